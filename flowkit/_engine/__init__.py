"""The one async engine behind flows and tasks. Nothing here is public API."""
