"""WatchManager: every watch kind, trigger rules, removal, setWatches, counts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.core.node import DataNode
from trio_quorum.core.watches import PERSISTENT_RECURSIVE, WatchManager, parent_path
from trio_quorum.protocol.consts import AddWatchMode, EventType, WatcherType

CREATED = EventType.NodeCreated
DELETED = EventType.NodeDeleted
CHANGED = EventType.NodeDataChanged
CHILDREN = EventType.NodeChildrenChanged


def test_parent_path() -> None:
    assert parent_path("/a/b/c") == "/a/b"
    assert parent_path("/a") == "/"


def test_no_watchers_is_empty() -> None:
    wm = WatchManager()
    for ev in (CREATED, DELETED, CHANGED, CHILDREN):
        assert wm.trigger("/a", ev) == []
    wm.add_data_watch("/other", "w")
    assert wm.trigger("/a", CHANGED) == []


def test_data_watch_is_one_shot() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", "w1")
    wm.add_data_watch("/a", "w1")  # twice: still one notification
    wm.add_data_watch("/a", "w2")
    assert sorted(wm.trigger("/a", CHANGED)) == [("w1", CHANGED, "/a"), ("w2", CHANGED, "/a")]
    assert wm.trigger("/a", CHANGED) == []
    assert wm.watch_count() == 0
    assert wm.by_watcher() == {}


def test_exists_watch_fires_node_created_and_parent_children() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a/b", "w1")
    wm.add_child_watch("/a", "w2")
    wm.add_child_watch("/a/b", "w3")  # not fired by creating /a/b itself
    ev = wm.trigger("/a/b", CREATED)
    assert ev == [("w1", CREATED, "/a/b"), ("w2", CHILDREN, "/a")]
    assert wm.check_watches("/a/b", WatcherType.Children, "w3")


def test_root_child_create_fires_root_child_watch() -> None:
    wm = WatchManager()
    wm.add_child_watch("/", "w")
    assert wm.trigger("/x", CREATED) == [("w", CHILDREN, "/")]


def test_delete_notifies_once_and_parent() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a/b", "w")
    wm.add_child_watch("/a/b", "w")
    wm.add_child_watch("/a/b", "w2")
    wm.add_child_watch("/a", "w")
    ev = wm.trigger("/a/b", DELETED)
    assert ev == [("w", DELETED, "/a/b"), ("w2", DELETED, "/a/b"), ("w", CHILDREN, "/a")]
    assert wm.watch_count() == 0


def test_setdata_does_not_fire_child_watches() -> None:
    wm = WatchManager()
    wm.add_child_watch("/a", "w")
    assert wm.trigger("/a", CHANGED) == []
    assert wm.check_watches("/a", WatcherType.Children, "w")


def test_persistent_watch_stays_and_gets_children_changed() -> None:
    wm = WatchManager()
    wm.add_watch("/a", "w", AddWatchMode.PERSISTENT)
    for _ in range(3):
        assert wm.trigger("/a", CHANGED) == [("w", CHANGED, "/a")]
    assert wm.trigger("/a/x", CREATED) == [("w", CHILDREN, "/a")]
    assert wm.trigger("/a/x/y", CREATED) == []  # not recursive
    assert wm.trigger("/a", DELETED) == [("w", DELETED, "/a")]
    assert wm.check_watches("/a", WatcherType.Persistent, "w")


def test_persistent_recursive_never_children_changed() -> None:
    wm = WatchManager()
    wm.add_watch("/a", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    assert wm.recursive_count() == 1
    assert wm.trigger("/a/b/c", CREATED) == [("w", CREATED, "/a/b/c")]
    assert wm.trigger("/a/b", CHANGED) == [("w", CHANGED, "/a/b")]
    assert wm.trigger("/a", CHANGED) == [("w", CHANGED, "/a")]
    assert wm.trigger("/a/b", CHILDREN) == []
    assert wm.trigger("/a/b/c", DELETED) == [("w", DELETED, "/a/b/c")]
    assert wm.trigger("/ab", CHANGED) == []  # a sibling with a common string prefix
    assert wm.trigger("/", CHANGED) == []


def test_recursive_on_root_sees_everything() -> None:
    wm = WatchManager()
    wm.add_watch("/", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    assert wm.trigger("/x/y", CHANGED) == [("w", CHANGED, "/x/y")]


def test_standard_and_persistent_coexist() -> None:
    wm = WatchManager()
    wm.add_watch("/a", "w", AddWatchMode.PERSISTENT)
    wm.add_data_watch("/a", "w")
    assert wm.trigger("/a", CHANGED) == [("w", CHANGED, "/a")]  # once, not twice
    # The one-shot watch is gone, but ZooKeeper 3.8.0 answers a Data check for
    # any watch in the data table, persistent ones included (checked against it
    # in tests/test_differential_wire.py).
    assert wm.check_watches("/a", WatcherType.Data, "w")
    assert wm.check_watches("/a", WatcherType.Persistent, "w")
    assert wm.trigger("/a", CHANGED) == [("w", CHANGED, "/a")]


def test_recursive_plus_standard_deduplicated() -> None:
    wm = WatchManager()
    wm.add_watch("/a", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    wm.add_data_watch("/a/b", "w")
    assert wm.trigger("/a/b", CHANGED) == [("w", CHANGED, "/a/b")]


def test_recursive_watcher_gets_deleted_once_with_child_watch() -> None:
    wm = WatchManager()
    wm.add_watch("/", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    wm.add_child_watch("/a", "w")
    assert wm.trigger("/a", DELETED) == [("w", DELETED, "/a")]


def test_remove_watcher_drops_everything() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", "w")
    wm.add_child_watch("/a", "w")
    wm.add_watch("/b", "w", AddWatchMode.PERSISTENT)
    wm.add_watch("/c", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    wm.add_data_watch("/a", "other")
    wm.remove_watcher("w")
    assert wm.recursive_count() == 0
    assert wm.watch_count() == 1
    assert wm.watches_of("w") == (set(), set())
    assert wm.trigger("/c/d", CHANGED) == []
    wm.remove_watcher("never-seen")  # harmless


def test_remove_watches_by_type() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", "w")
    wm.add_child_watch("/a", "w")
    assert not wm.remove_watches("/a", WatcherType.Persistent, "w")
    assert wm.remove_watches("/a", WatcherType.Data, "w")
    assert not wm.remove_watches("/a", WatcherType.Data, "w")
    assert wm.check_watches("/a", WatcherType.Children, "w")
    assert wm.remove_watches("/a", WatcherType.Children, "w")
    assert not wm.check_watches("/a", WatcherType.Any, "w")
    wm.add_watch("/p", "w", AddWatchMode.PERSISTENT)
    assert wm.remove_watches("/p", WatcherType.Persistent, "w")
    assert wm.watch_count() == 0
    wm.add_watch("/r", "w", AddWatchMode.PERSISTENT_RECURSIVE)
    assert not wm.remove_watches("/r", WatcherType.Persistent, "w")
    assert wm.remove_watches("/r", WatcherType.Any, "w")
    assert wm.recursive_count() == 0
    assert not wm.remove_watches("/r", WatcherType.Any, "w")


def test_check_watches_other_watcher_or_path() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", "w")
    assert wm.check_watches("/a", WatcherType.Data, "w")
    assert wm.check_watches("/a", WatcherType.Any, "w")
    assert not wm.check_watches("/a", WatcherType.Data, "x")
    assert not wm.check_watches("/b", WatcherType.Any, "w")
    assert not wm.check_watches("/a", WatcherType.Children, "w")


def test_bad_mode_and_type_raise_value_error() -> None:
    wm = WatchManager()
    for bad in (2, -1):
        try:
            wm.add_watch("/a", "w", bad)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted a bad mode")
        try:
            wm.remove_watches("/a", bad + 10, "w")
        except ValueError:
            pass
        else:
            raise AssertionError("accepted a bad type")


def _node(mzxid: int, pzxid: int) -> DataNode:
    return DataNode(b"", -1, 1, mzxid, 0, 0, pzxid=pzxid)


def test_set_watches_relative_zxid_rules() -> None:
    wm = WatchManager()
    nodes = {"/old": _node(5, 5), "/new": _node(20, 5), "/kids": _node(5, 21)}
    ev = wm.set_watches(
        nodes,
        10,
        ["/old", "/new", "/gone"],
        ["/old", "/missing"],
        ["/old", "/kids", "/gone"],
        "w",
        ["/p"],
        ["/r"],
    )
    assert ev == [
        ("w", CHANGED, "/new"),
        ("w", DELETED, "/gone"),
        ("w", CREATED, "/old"),
        ("w", CHILDREN, "/kids"),
        ("w", DELETED, "/gone"),
    ]
    data, child = wm.watches_of("w")
    assert data == {"/old", "/missing", "/p", "/r"}
    assert child == {"/old", "/p"}
    assert wm.recursive_count() == 1
    # Equal zxid is not "newer": re-registered, no event.
    wm2 = WatchManager()
    assert wm2.set_watches(nodes.get, 20, ["/new"], [], ["/kids"], "w") == [
        ("w", CHILDREN, "/kids")
    ]


def test_summary_and_views() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", "w1")
    wm.add_data_watch("/b", "w1")
    wm.add_data_watch("/a", "w2")
    wm.add_child_watch("/c", "w3")
    s = wm.summary()
    assert (s.num_connections, s.num_paths, s.total_watches) == (2, 2, 3)
    assert wm.watch_count() == 4
    assert wm.by_path() == {"/a": {"w1", "w2"}, "/b": {"w1"}}
    assert wm.by_watcher() == {"w1": {"/a", "/b"}, "w2": {"/a"}}
    assert wm.child_by_path() == {"/c": {"w3"}}


# ---------------------------------------------------------------- property test

PATHS = ["/", "/a", "/a/b", "/a/b/c", "/b", "/ab"]
WATCHERS = ["w1", "w2", "w3"]
EVENTS = [CREATED, DELETED, CHANGED, CHILDREN]

op = st.one_of(
    st.tuples(st.just("data"), st.sampled_from(PATHS), st.sampled_from(WATCHERS)),
    st.tuples(st.just("child"), st.sampled_from(PATHS), st.sampled_from(WATCHERS)),
    st.tuples(
        st.just("add"), st.sampled_from(PATHS), st.sampled_from(WATCHERS), st.sampled_from([0, 1])
    ),
    st.tuples(st.just("trigger"), st.sampled_from(PATHS[1:]), st.sampled_from(EVENTS)),
    st.tuples(
        st.just("remove"), st.sampled_from(PATHS), st.sampled_from(WATCHERS), st.integers(1, 5)
    ),
    st.tuples(st.just("drop"), st.sampled_from(WATCHERS)),
)


def _model_trigger(
    model: dict[tuple[str, str, str], int], path: str, ev: int
) -> set[tuple[str, int, str]]:
    """Reference rules written independently of the implementation."""
    out: set[tuple[str, int, str]] = set()

    def fire(table: str, p: str, e: int, suppress: set[str]) -> set[str]:
        chosen = set()
        for (t, mp, w), flags in list(model.items()):
            if t != table:
                continue
            exact = mp == p
            ancestor = mp == "/" and p != "/" or p.startswith(mp + "/")
            if exact:
                chosen.add(w)
                if flags & 1:
                    if flags & ~1:
                        model[(t, mp, w)] = flags & ~1
                    else:
                        del model[(t, mp, w)]
            elif ancestor and flags & PERSISTENT_RECURSIVE and e != CHILDREN:
                chosen.add(w)
        for w in chosen - suppress:
            out.add((w, e, p))
        return chosen

    parent = path.rsplit("/", 1)[0] or "/"
    if ev == DELETED:
        seen = fire("d", path, DELETED, set())
        fire("c", path, DELETED, seen)
        fire("c", parent, CHILDREN, set())
    elif ev == CREATED:
        fire("d", path, CREATED, set())
        fire("c", parent, CHILDREN, set())
    elif ev == CHILDREN:
        fire("c", path, CHILDREN, set())
    else:
        fire("d", path, ev, set())
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40))
def test_matches_reference_model(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    wm = WatchManager()
    model: dict[tuple[str, str, str], int] = {}
    for o in ops:
        kind = o[0]
        if kind == "data":
            wm.add_data_watch(o[1], o[2])
            model[("d", o[1], o[2])] = model.get(("d", o[1], o[2]), 0) | 1
        elif kind == "child":
            wm.add_child_watch(o[1], o[2])
            model[("c", o[1], o[2])] = model.get(("c", o[1], o[2]), 0) | 1
        elif kind == "add":
            wm.add_watch(o[1], o[2], o[3])
            if o[3] == 0:
                for t in "dc":
                    model[(t, o[1], o[2])] = model.get((t, o[1], o[2]), 0) | 2
            else:
                model[("d", o[1], o[2])] = model.get(("d", o[1], o[2]), 0) | 4
        elif kind == "trigger":
            got = wm.trigger(o[1], o[2])
            assert len(got) == len(set(got))
            assert set(got) == _model_trigger(model, o[1], o[2])
        elif kind == "remove":
            _, p, w, typ = o
            masks = {
                1: [("c", 1)],
                2: [("d", 1)],
                3: [("c", 7), ("d", 7)],
                4: [("c", 2), ("d", 2)],
                5: [("d", 4)],
            }
            expect = False
            for t, m in masks[typ]:
                f = model.get((t, p, w), 0)
                if f & m:
                    expect = True
                    if f & ~m:
                        model[(t, p, w)] = f & ~m
                    else:
                        del model[(t, p, w)]
            assert wm.remove_watches(p, typ, w) == expect
        else:
            wm.remove_watcher(o[1])
            for k in [k for k in model if k[2] == o[1]]:
                del model[k]
        # Invariants: counts and views agree with the model.
        assert wm.watch_count() == len(model)
        assert wm.recursive_count() == sum(1 for f in model.values() if f & 4)
        for w in WATCHERS:
            d, c = wm.watches_of(w)
            assert d == {k[1] for k in model if k[0] == "d" and k[2] == w}
            assert c == {k[1] for k in model if k[0] == "c" and k[2] == w}
