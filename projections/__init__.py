"""Read models built from the event store's events. Each module holds one projection: its
tables (created by the migrations), its `apply` and its queries."""
