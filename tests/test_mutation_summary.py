"""devkit/mutation_summary.py: kill rates from mutmut's result files, survivors explained or listed."""

import json


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
