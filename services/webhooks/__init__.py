"""Webhooks: registrations (MLflow's and Registrar's own), their signing secrets, and the
dispatcher that delivers every matching event from a durable cursor over the event store."""
