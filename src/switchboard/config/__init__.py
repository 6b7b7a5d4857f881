"""The config cascade: its schema and sections (directories included), the roles of its keys
(operator / tenant), merging and explaining. Shared vocabulary below every domain: it imports
only the core."""
