"""Episode CSVs and Lake's run folders (siamese.eval.episodes), fuzzed."""

from __future__ import annotations

from hypothesis import example, given

from siamese.data.pairfiles import outside
from siamese.eval.episodes import read_episodes
from tests.fuzz.harness import Sandbox, budget, contract, mutations, png, write

CSV = (b"episode,role,path,label\ne1,support,A/0.png,A\ne1,support,B/0.png,B\n"
       b"e1,query,A/1.png,A\ne1,query,B/1.png,B\n")
LABELS = b"run01/test/item1.png run01/training/class1.png\n" \
         b"run01/test/item2.png run01/training/class2.png\n"


def _images(box: Sandbox) -> None:
    for c in "AB":
        (box.root / c).mkdir()
        for k in range(2):
            (box.root / c / f"{k}.png").write_bytes(png(10 * k))
    for sub, names in (("training", ["class1", "class2"]), ("test", ["item1", "item2"])):
        (box.root / "run01" / sub).mkdir(parents=True)
        for n in names:
            (box.root / "run01" / sub / f"{n}.png").write_bytes(png(99))


def _read(path, root=None):
    episodes, base = read_episodes(path, root)
    for ep in episodes:
        for p in ep.support + ep.query:
            assert not outside(p) and (base / p).is_file(), p
        assert ep.query and set(ep.query_labels) <= set(ep.support_labels)
    return episodes


@budget(80)
@given(mutations(CSV))
@example(b"episode,role,path,label\n\x00\n")
@example(CSV + b"e1,query," + b"x" * 5000 + b",A\n")  # found by fuzzing: name too long
def test_a_mutated_episode_csv(data):
    with Sandbox() as box:
        _images(box)
        path = write(box.root / "episodes.csv", data)
        contract("episodes", lambda: _read(path, box.root), box, names=[path],
                 note=repr(data[:200]))


@budget(80)
@given(mutations(LABELS, separators=b" /"))
def test_a_mutated_lake_run_folder(data):
    with Sandbox() as box:
        _images(box)
        labels = write(box.root / "run01" / "class_labels.txt", data)
        for path in (box.root / "run01", box.root):  # one run, or a folder of runs
            contract("episodes", lambda p=path: _read(p), box, names=[labels, path],
                     note=repr(data[:200]))
