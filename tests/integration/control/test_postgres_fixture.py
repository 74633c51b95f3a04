from sqlalchemy import text


def test_database_is_migrated(database):
    assert database.revision() == "0002"
    with database.read() as session:
        assert session.execute(text("select count(*) from executions")).scalar_one() == 0
