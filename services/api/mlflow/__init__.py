"""MLflow's REST API (registry, and the tracking calls `mlflow.register_model` needs), served by
Registrar: the same commands and events as /v1, in MLflow's shapes and error codes."""
