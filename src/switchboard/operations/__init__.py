"""Use cases that span domains (applying a config tree, seeding the demo account). They call
the domains' services; no domain imports them."""
