"""TMAPI ``item_detail``: fetching offers and turning their JSON into domain objects."""
