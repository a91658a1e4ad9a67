"""Privileges for the application's PostgreSQL role: everything it needs, and on the audit
tables only SELECT and INSERT.

The triggers refuse UPDATE, DELETE and TRUNCATE on the audit tables, but a table's owner (and
any superuser) can disable triggers. So in production the application connects as a role that
owns nothing: migrations run as the owner, the application as this role. Then no session of
the application, however compromised, can change or remove an audit row.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

AUDIT_TABLES = ("audit_auditevent", "audit_auditcheckpoint")


def grant_statements(role: str, database: str) -> list[sql.Composed]:
    """The statements that give ``role`` the application's privileges (re-run after migrate)."""
    who = sql.Identifier(role)
    audit = sql.SQL(", ").join(sql.Identifier(table) for table in AUDIT_TABLES)
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            who
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who),
        sql.SQL("REVOKE ALL ON {} FROM {}").format(audit, who),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(audit, who),
    ]


class Command(BaseCommand):
    help = (
        "Print (or --apply) the GRANT and REVOKE statements that let ROLE run Signoff with only "
        "SELECT and INSERT on the audit tables. Run as the tables' owner, after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The PostgreSQL role the application connects as.")
        parser.add_argument("--apply", action="store_true", help="Execute the statements.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "Database roles apply to PostgreSQL; on SQLite the triggers are the guard."
            )
        role = options["role"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
            found = cursor.fetchone()
            if found is None:
                raise CommandError(f"There is no role {role!r}: CREATE ROLE {role} LOGIN first.")
            if found[0]:
                raise CommandError(f"{role} is a superuser: it could bypass every guard.")
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE tableowner = %s AND tablename = ANY(%s)",
                [role, list(AUDIT_TABLES)],
            )
            owned = [row[0] for row in cursor.fetchall()]
            if owned:
                raise CommandError(
                    f"{role} owns {', '.join(owned)} and could disable its triggers: "
                    "run migrations as another role and let the application connect as this one."
                )
            statements = grant_statements(role, connection.settings_dict["NAME"])
            raw = cursor.connection
            for statement in statements:
                self.stdout.write(statement.as_string(raw) + ";")
            if options["apply"]:
                with transaction.atomic():
                    for statement in statements:
                        cursor.execute(statement)
                self.stderr.write(self.style.SUCCESS(f"Applied to role {role}."))
