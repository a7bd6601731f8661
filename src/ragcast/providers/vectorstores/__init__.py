"""Vector database backends, chosen by the contract's ``vector_db.id``."""
