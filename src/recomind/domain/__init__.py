"""Pure domain: entities, value objects, events, errors and ports. No I/O here."""
