"""The counts behind the `references_resolve` check, on a real warehouse file: each problem is
found with its right row count whether the ids are segpipe's dense ones (the range-and-gaps
path) or arbitrary ones (the anti-join path)."""

import pytest

from segpipe.warehouse.connection import connect
from segpipe.warehouse.integrity import broken_references

INTEREST_GROUP = 5001  # the opt-in group of interest 1, also a segment


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "warehouse.duckdb") as con:
        yield con


def _fill(con, cons_ids: list[int]):
    """People with these cons_ids (emails and member ids unique), interests 1-3, and every
    person opted in to interest 1 (plus a segment membership each)."""
    con.execute(
        "INSERT INTO constituents (cons_id, member_id, email) "
        "SELECT id, 'M-' || id, 'p' || id || '@example.org' FROM unnest(?::BIGINT[]) t(id)",
        [cons_ids],
    )
    con.execute("INSERT INTO interests (interest_id, name) VALUES (1, 'A'), (2, 'B'), (3, 'C')")
    con.execute(
        "INSERT INTO interest_groups (group_id, interest_id, kind, name) "
        f"VALUES ({INTEREST_GROUP}, 1, 'opt_in', 'A Opt-In')"
    )
    con.execute(
        "INSERT INTO segments (segment_id, name, kind) "
        f"VALUES ({INTEREST_GROUP}, 'A Opt-In', 'interest_group'), (7, 'Manual', 'manual')"
    )
    con.execute(
        "INSERT INTO interest_memberships (cons_id, interest_id, status) "
        "SELECT cons_id, 1, 'opted_in' FROM constituents"
    )
    con.execute(
        "INSERT INTO segment_memberships (segment_id, cons_id) SELECT 7, cons_id FROM constituents"
    )


def _problems(con) -> dict[str, int]:
    return dict(broken_references(con).iter_rows())


DENSE = list(range(1, 201))
SPARSE = [1, 10**9, 5 * 10**12]  # ids segpipe did not assign: far apart


@pytest.mark.parametrize("ids", [DENSE, SPARSE], ids=["dense", "sparse"])
def test_a_sound_warehouse_has_no_problem(con, ids):
    _fill(con, ids)
    problems = _problems(con)
    assert len(problems) == 9
    assert set(problems.values()) == {0}


@pytest.mark.parametrize("ids", [DENSE, SPARSE], ids=["dense", "sparse"])
def test_memberships_of_a_deleted_person_dangle(con, ids):
    _fill(con, ids)
    # A person deleted inside the range (a gap) and one named beyond it.
    con.execute(f"DELETE FROM constituents WHERE cons_id = {ids[1]}")
    con.execute("INSERT INTO interest_memberships (cons_id, interest_id, status) "
                f"VALUES ({ids[-1] + 5}, 2, 'opted_in'), (0, 2, 'opted_in')")  # fmt: skip
    problems = _problems(con)
    assert problems["interest membership names an unknown person"] == 3
    assert problems["segment member names an unknown person"] == 1
    assert problems["cons_id shared by several constituents"] == 0


@pytest.mark.parametrize("ids", [DENSE, SPARSE], ids=["dense", "sparse"])
def test_unknown_interests_and_shared_identifiers_are_counted(con, ids):
    _fill(con, ids)
    con.execute("DELETE FROM interests WHERE interest_id = 2")  # a gap among interest ids
    con.execute("INSERT INTO interest_memberships (cons_id, interest_id, status) "
                f"VALUES ({ids[0]}, 2, 'opted_in'), ({ids[0]}, 99, 'opted_in')")  # fmt: skip
    # Two more rows of the first person: same cons_id, member id and email.
    con.execute(f"INSERT INTO constituents SELECT * FROM constituents WHERE cons_id = {ids[0]}")
    con.execute(f"INSERT INTO constituents SELECT * FROM constituents WHERE cons_id = {ids[0]}")
    problems = _problems(con)
    assert problems["interest membership names an unknown interest"] == 2
    assert problems["cons_id shared by several constituents"] == 3
    assert problems["member_id shared by several constituents"] == 3
    assert problems["email shared by several constituents"] == 3


def test_an_empty_warehouse_and_an_orphan_membership(con):
    assert set(_problems(con).values()) == {0}
    con.execute("INSERT INTO interest_memberships (cons_id, interest_id, status) "
                "VALUES (1, 1, 'opted_in')")  # fmt: skip
    problems = _problems(con)
    assert problems["interest membership names an unknown person"] == 1
    assert problems["interest membership names an unknown interest"] == 1


def test_no_temp_table_is_left_behind(con):
    _fill(con, DENSE)
    broken_references(con)
    temp = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name LIKE '_integrity%'"
    ).fetchall()[0][0]
    assert temp == 0
