"""The web UI: server-rendered pages under /ui/ for the people who govern models, served by the
API's own process (registrar.ui.site installs it)."""
