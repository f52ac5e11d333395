"""Actors: connection, subscription, room and transactor actors, and the runtime they run on."""
