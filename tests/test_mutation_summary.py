"""devkit/mutation_summary.py: kill rates from mutmut's result files, survivors explained or listed."""

import hashlib
import json
import os
from collections import Counter

from devkit import mutation_summary


def test_survivors_are_explained_by_the_equivalents_file_or_listed(tmp_path, capsys):
    mutants = tmp_path / "mutants" / "submission"
    mutants.mkdir(parents=True)
    (mutants / "rounds.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "submission.rounds.x_a__mutmut_1": 1, "submission.rounds.x_a__mutmut_2": -24,  # failed, timed out
        "submission.rounds.x_a__mutmut_3": 0, "submission.rounds.x_a__mutmut_4": 0,  # survived
        "submission.rounds.x_a__mutmut_5": 33, "submission.rounds.x_a__mutmut_6": None}}))  # no tests, not run
    equivalents = tmp_path / "equivalents.txt"
    equivalents.write_text("# header\n\nsubmission.rounds.x_a__mutmut_3  # why\nsubmission.rounds.x_gone__mutmut_1 # old\n")
    assert mutation_summary.read_equivalents(equivalents) == {"submission.rounds.x_a__mutmut_3": "why",
                                                             "submission.rounds.x_gone__mutmut_1": "old"}
    code = mutation_summary.main(["--mutants", str(tmp_path / "mutants"), "--equivalents", str(equivalents),
                                  "--json", str(tmp_path / "m.json")])
    assert code == 1  # one survivor is neither killed nor explained
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["total"] == {"killed": 2, "equivalent": 1, "survived": 1, "no tests": 1, "not checked": 1}
    assert record["survivors"] == {"submission/rounds.py": ["submission.rounds.x_a__mutmut_4",
                                                            "submission.rounds.x_a__mutmut_5"]}
    assert record["stale_equivalents"] == ["submission.rounds.x_gone__mutmut_1"]
    assert "submission/rounds.py                6           2" in capsys.readouterr().out


def write_meta(tmp_path, codes):
    mutants = tmp_path / "mutants"
    (mutants / "submission").mkdir(parents=True)
    (mutants / "submission" / "rounds.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    return mutants


def test_a_run_that_stopped_in_mutmuts_stats_stage_fails_and_marks_no_equivalent_stale(tmp_path, capsys):
    mutants = write_meta(tmp_path, {"submission.rounds.x_a__mutmut_1": None, "submission.rounds.x_a__mutmut_2": None})
    equivalents = tmp_path / "equivalents.txt"
    equivalents.write_text("submission.rounds.x_a__mutmut_2  # why\n")
    code = mutation_summary.main(["--mutants", str(mutants), "--equivalents", str(equivalents),
                                  "--json", str(tmp_path / "m.json")])
    assert code == 1
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["stale_equivalents"] == [] and record["survivors"] == {}
    assert record["unfinished"] == [(f"2 mutants not checked: mutmut stopped before testing them ({mutants}/"
                                     "mutmut-stats.json missing: it stopped in its stats stage); read mutmut's "
                                     "output (docs/mutation.md, 'Running it')")]
    assert "error: 2 mutants not checked" in capsys.readouterr().out
    (mutants / "mutmut-stats.json").write_text("{}")  # stopped later: while testing the mutants
    assert mutation_summary.unfinished(Counter({"not checked": 1, "killed": 1}), mutants) == [
        ("1 mutants not checked: mutmut stopped before testing them; read mutmut's output (docs/mutation.md, "
         "'Running it')")]


def test_a_run_that_killed_nothing_says_the_tests_ran_the_original_code(tmp_path, capsys):
    mutants = write_meta(tmp_path, {"submission.rounds.x_a__mutmut_1": 0, "submission.rounds.x_a__mutmut_2": 33})
    equivalents = tmp_path / "equivalents.txt"
    equivalents.write_text("submission.rounds.x_a__mutmut_1  # why\nsubmission.rounds.x_a__mutmut_2  # why\n")
    assert mutation_summary.main(["--mutants", str(mutants), "--equivalents", str(equivalents)]) == 1
    assert capsys.readouterr().out.endswith(
        "error: none of 2 checked mutants was killed: the tests ran the original submission/, "
        f"not the mutated copy in {mutants}/\n")
    assert mutation_summary.unfinished(Counter({"killed": 1, "survived": 5}), mutants) == []


MUTATED = '''def x_a__mutmut_orig(n, step=1):
    return n + step

def x_a__mutmut_1(n, step=1):
    return n - step

def x_a__mutmut_2(n, step=2):
    return n + step

class Kept:
    def xǁKeptǁb__mutmut_orig(self):
        return 0

    def xǁKeptǁb__mutmut_1(self):
        return 1
'''


def sha(changes):
    return hashlib.sha1(changes.encode()).hexdigest()[:8]


def test_an_entry_explains_only_the_mutant_its_fingerprint_was_taken_from(tmp_path, capsys):
    mutants = write_meta(tmp_path, {"submission.rounds.x_a__mutmut_1": 0, "submission.rounds.x_a__mutmut_2": 0,
                                    "submission.rounds.xǁKeptǁb__mutmut_1": 36})
    (mutants / "submission" / "rounds.py").write_text(MUTATED)
    minus, plus = sha("-return n + step\n+return n - step"), sha("-def (n, step=1):\n+def (n, step=2):")
    assert mutation_summary.fingerprint(mutants, "submission.rounds.x_a__mutmut_1") == minus
    assert mutation_summary.fingerprint(mutants, "submission.rounds.x_a__mutmut_2") == plus  # the signature counts
    assert mutation_summary.fingerprint(mutants, "submission.rounds.xǁKeptǁb__mutmut_1") == sha("-return 0\n+return 1")
    assert mutation_summary.fingerprint(mutants, "submission.rounds.x_a__mutmut_3") is None
    assert mutation_summary.fingerprint(mutants, "submission.select.x_a__mutmut_1") is None
    assert mutation_summary.main(["--mutants", str(mutants), "--fingerprint", "submission.rounds.x_a__mutmut_1"]) == 0
    assert capsys.readouterr().out == f"submission.rounds.x_a__mutmut_1  {minus}\n"
    # mutant 2's entry was written for the mutant that number stood for before: it explains nothing now
    equivalents = tmp_path / "equivalents.txt"
    equivalents.write_text(f"submission.rounds.x_a__mutmut_1  {minus}  # n - step is n + step here\n"
                           f"submission.rounds.x_a__mutmut_2  {minus}  # written for another mutant\n")
    assert mutation_summary.read_entries(equivalents) == {
        "submission.rounds.x_a__mutmut_1": (minus, "n - step is n + step here"),
        "submission.rounds.x_a__mutmut_2": (minus, "written for another mutant")}
    code = mutation_summary.main(["--mutants", str(mutants), "--equivalents", str(equivalents),
                                  "--json", str(tmp_path / "m.json")])
    assert code == 1
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["total"] == {"killed": 1, "equivalent": 1, "survived": 1}
    assert record["survivors"] == {"submission/rounds.py": ["submission.rounds.x_a__mutmut_2"]}
    assert record["stale_equivalents"] == ["submission.rounds.x_a__mutmut_2"]
    assert record["timed_out"] == ["submission.rounds.xǁKeptǁb__mutmut_1"]
    assert "1 of the killed timed out" in capsys.readouterr().out


def test_as_a_pytest_plugin_it_keeps_mutmuts_stats_mode_from_subprocesses(monkeypatch):
    monkeypatch.setenv("MUTANT_UNDER_TEST", "stats")
    mutation_summary.pytest_configure(None)
    assert "MUTANT_UNDER_TEST" not in os.environ
    monkeypatch.setenv("MUTANT_UNDER_TEST", "submission.rounds.x_a__mutmut_1")  # a mutant's run: subprocesses too
    mutation_summary.pytest_configure(None)
    assert os.environ["MUTANT_UNDER_TEST"] == "submission.rounds.x_a__mutmut_1"
