"""Default and app rules for the system entity `users`, pure (no database)."""

from __future__ import annotations

from store.query.ast import TRUE, Cmp
from store.rules import DEFAULT_RULES, auth_of, compile_rules

ALICE = auth_of("usr_alice", "user", {})
ADMIN_ROLE = auth_of("usr_root", "admin", {})


def test_default_users_rows_are_readable_by_any_signed_in_user():
    assert DEFAULT_RULES.row_rule(ALICE, "users", "read") == TRUE
    assert DEFAULT_RULES.row_rule(ALICE, "todos", "read") == Cmp(("userId",), "eq", "usr_alice")


def test_default_email_is_the_users_own_or_role_admins():
    assert DEFAULT_RULES.field_rule(ALICE, "users", "email", "read") == Cmp(
        ("id",), "eq", "usr_alice"
    )
    assert DEFAULT_RULES.field_rule(ADMIN_ROLE, "users", "email", "read") == TRUE
    strip = DEFAULT_RULES.stripper(ALICE, "users")
    assert strip is not None
    assert strip({"id": "usr_bob", "email": "b@x"}) == {"id": "usr_bob"}
    assert strip({"id": "usr_alice", "email": "a@x"}) == {"id": "usr_alice", "email": "a@x"}


def test_app_read_rule_for_users_replaces_the_default():
    rules = compile_rules({"users": {"read": {"id": "$auth.id"}}})
    assert rules.row_rule(ALICE, "users", "read") == Cmp(("id",), "eq", "usr_alice")
    assert rules.field_rule(ALICE, "users", "email", "read") != TRUE


def test_app_field_rules_alone_keep_the_read_default():
    rules = compile_rules({"users": {"fields": {"email": {"read": True}}}})
    assert rules.row_rule(ALICE, "users", "read") == TRUE
    assert rules.stripper(ALICE, "users") is None
