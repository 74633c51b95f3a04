from sqlalchemy import text

from services.control.db import head_revision


def test_database_is_migrated(database):
    assert database.revision() == head_revision()
    with database.read() as session:
        assert session.execute(text("select count(*) from executions")).scalar_one() == 0
