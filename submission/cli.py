"""Command line: ``python -m submission {run,select,evaluate,validate} ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson

from .encoders import DEFAULT_ENCODER, ENCODERS, get_encoder
from .engine import EngineSettings  # engine.py imports vllm only when used
from .prompts import DEFAULT_TEMPLATE, TEMPLATES
from .report import SORT_KEYS
from .select import SELECTORS, uses_judge
from .settings import MODES, TTT_MODES, GenerationSettings, RunSettings
from .tasks import ChallengeFileError, load_challenges, load_solutions

# Every default below is read from these: settings.py writes each one once.
DEFAULTS = RunSettings()
ENGINE_DEFAULTS = EngineSettings(model="")


_SELECTOR_HELP = "; ".join(f"{name}: {method.summary}" for name, method in SELECTORS.items())


def log(message: str) -> None:
    print(message, flush=True)


def _load_challenges_or_exit(path: Path):
    try:
        challenges = load_challenges(path)
    except ChallengeFileError as exc:
        sys.exit(f"error: {exc}")
    for problem in challenges.problems:
        log(f"bad task: {problem}")
    return challenges


def _load_solutions_or_exit(path: Path):
    try:
        solutions, problems = load_solutions(path)
    except ChallengeFileError as exc:
        sys.exit(f"error: {exc}")
    for problem in problems:
        log(f"solutions: {problem}")
    return solutions


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--challenges", type=_existing_file, required=True, help="Kaggle-layout challenges JSON file")
    io.add_argument("--solutions", type=_existing_file, help="solutions JSON file: also write and print metrics.json")
    io.add_argument("--model", required=True, help="local model folder (config.json, weights, tokenizer)")
    io.add_argument("--out", type=Path, required=True,
                    help="run folder: submission.json, predictions.jsonl, run.json, metrics.json")

    aug = p.add_argument_group("augmentation (AIRV)")
    aug.add_argument("--augmentations", type=int, default=DEFAULTS.views.augmentations,
                     help="views per test input; the 8 dihedral transforms come first, then views with "
                          "colour permutations and shuffled train examples (default: %(default)s)")
    aug.add_argument("--permute-background", action="store_true",
                     help="let colour permutations move colour 0 too (default: 0 stays fixed)")
    aug.add_argument("--no-shuffle-order", dest="shuffle_order", action="store_false",
                     help="keep the train examples in the task's order in the extra views")
    aug.add_argument("--seed", type=int, default=DEFAULTS.views.seed,
                     help="seed of the augmentation plan and sampling (default: %(default)s)")

    gen = p.add_argument_group("generation")
    gen.add_argument("--samples", type=int, default=DEFAULTS.generation.samples,
                     help="completions per prompt (default: %(default)s)")
    gen.add_argument("--temperature", type=float, default=DEFAULTS.generation.temperature,
                     help="sampling temperature; 0 is greedy and allows one sample (default: %(default)s)")
    gen.add_argument("--max-tokens", type=int,
                     help="cap on the answer tokens; by default each task gets room for a square grid "
                          "as large as its largest grid")
    gen.add_argument("--mode", choices=("auto", *MODES), default=GenerationSettings.mode,
                     help="generation mode, recorded in each prediction: greedy (temperature 0, one per prompt), "
                          "sample (--samples at --temperature), beam (vLLM beam search; its --beam-width beams "
                          "are the prompt's candidates), dfs (depth-first enumeration: the greedy answer and "
                          "every other answer of probability >= --min-prob); auto = greedy at temperature 0, "
                          "else sample (default: %(default)s)")
    gen.add_argument("--beam-width", type=int, default=DEFAULTS.generation.beam_width,
                     help="beams per prompt in beam mode (default: %(default)s)")
    gen.add_argument("--min-prob", type=float, default=DEFAULTS.generation.min_prob,
                     help="dfs mode: keep every answer at least this probable (the ARChitects used 0.1-0.2, "
                          "NVARC 0.2; default: %(default)s)")
    gen.add_argument("--dfs-max-candidates", type=int, default=DEFAULTS.generation.dfs_max_candidates,
                     help="dfs mode: most answers per prompt, the greedy one included (default: %(default)s)")
    gen.add_argument("--dfs-max-rounds", type=int, default=DEFAULTS.generation.dfs_max_rounds,
                     help="dfs mode: engine calls for branches after the greedy one (default: %(default)s)")
    gen.add_argument("--restrict-vocabulary", action="store_true",
                     help="decode with only the tokens an answer in the encoder's format is written with "
                          "(digits, newline, row numbers, shape header, fence, end of turn), as NVARC did; "
                          "greedy, sample and dfs modes; log-probs stay the model's raw ones")
    gen.add_argument("--encoder", choices=sorted(ENCODERS),
                     help="grid text format the model was trained on (default: the model folder's "
                          f"arc_format.json, else {DEFAULT_ENCODER}, arc24's)")
    gen.add_argument("--template", choices=sorted(TEMPLATES),
                     help="prompt template the model was trained on (default: the model folder's "
                          f"arc_format.json, else {DEFAULT_TEMPLATE})")

    eng = p.add_argument_group("engine (vLLM)")
    eng.add_argument("--dtype", default=ENGINE_DEFAULTS.dtype,
                     help="model dtype; auto = float16 on GPUs below compute capability 8.0 (T4), "
                          "bfloat16 on newer GPUs (L4) and on CPU")
    eng.add_argument("--max-model-len", type=int, default=DEFAULTS.format.max_model_len,
                     help="context length, capped at the model's own (default: %(default)s)")
    eng.add_argument("--gpu-memory-utilization", type=float, default=ENGINE_DEFAULTS.gpu_memory_utilization,
                     help="(default: %(default)s)")
    eng.add_argument("--cpu-kv-cache-gib", type=float, default=ENGINE_DEFAULTS.cpu_kv_cache_gib,
                     help="KV cache on CPU, in GiB; VLLM_CPU_KVCACHE_SPACE wins when set (default: %(default)s)")
    eng.add_argument("--enforce-eager", action="store_true", help="disable CUDA graphs (slower, less memory)")
    eng.add_argument("--attention-backend", default=ENGINE_DEFAULTS.attention_backend,
                     help="vLLM attention backend; auto = vLLM's choice, but TRITON_ATTN on GPUs below compute "
                          "capability 8.0 (T4), where some vLLM releases pick FlashInfer, which fails there")

    p.add_argument("--selector", choices=sorted(SELECTORS), default=DEFAULTS.selection.selector,
                   help="how the two attempts are chosen from the predictions: " + _SELECTOR_HELP
                        + " (default: %(default)s)")
    p.add_argument("--judge-views", type=int, default=DEFAULTS.selection.judge_views,
                   help="judge selectors: augmented views each candidate is scored under (default: %(default)s)")
    p.add_argument("--judge-top-k", type=int, default=DEFAULTS.selection.judge_top_k,
                   help="judge selectors: candidates judged per test input, in vote order (default: %(default)s)")

    ttt = p.add_argument_group("test-time fine-tuning (a LoRA adapter per task, trained on its train pairs)")
    ttt.add_argument("--ttt", dest="ttt_mode", choices=TTT_MODES, default=DEFAULTS.ttt.mode,
                     help="before inference, train a LoRA adapter on each test task's leave-one-out train pairs "
                          "(task) or one adapter on all of them (shared), within --ttt-share of the time budget; "
                          "every task's prompts still go to vLLM together, each through its adapter; a task "
                          "without one uses the base model (default: %(default)s)")
    ttt.add_argument("--adapters-dir", type=Path,
                     help="where the adapters are saved (default: OUT/adapters); the Kaggle kernel keeps them "
                          "outside /kaggle/working, whose files Kaggle commits as the notebook's output")
    ttt.add_argument("--ttt-rank", type=int, default=DEFAULTS.ttt.rank, help="LoRA rank (default: %(default)s)")
    ttt.add_argument("--ttt-steps", type=int, default=DEFAULTS.ttt.steps,
                     help="optimizer steps per adapter, fewer when the time does not allow (default: %(default)s)")
    ttt.add_argument("--ttt-min-steps", type=int, default=DEFAULTS.ttt.min_steps,
                     help="a task that would get fewer steps gets no adapter (default: %(default)s)")
    ttt.add_argument("--ttt-learning-rate", type=float, default=DEFAULTS.ttt.learning_rate,
                     help="peak learning rate (default: %(default)s)")
    ttt.add_argument("--ttt-examples-per-step", type=int, default=DEFAULTS.ttt.examples_per_step,
                     help="augmented leave-one-out examples per step (default: %(default)s)")
    ttt.add_argument("--ttt-share", type=float, default=DEFAULTS.ttt.share,
                     help="share of the time budget training may use; the rest is inference (default: %(default)s)")

    budget = p.add_argument_group("time budget, rounds and workers")
    budget.add_argument("--time-budget", type=float, default=DEFAULTS.budget.time_budget,
                        help="seconds for the whole run, engine start-up included; 0 = no limit (default: "
                             "%(default)s = 11 h, for Kaggle's 12 h limit)")
    budget.add_argument("--reserve-seconds", type=float, default=DEFAULTS.budget.reserve_seconds,
                        help="kept back from generation for the final selection and writes; judge selectors "
                             "also keep back the judge's estimated time, measured as generation runs "
                             "(default: %(default)s)")
    budget.add_argument("--views-per-round", type=int, default=DEFAULTS.budget.views_per_round,
                        help="views added per test input each round; round 1 is the 8 dihedral views "
                             "(default: %(default)s)")
    budget.add_argument("--no-adaptive", dest="adaptive", action="store_false",
                        help="give every test input every round; by default a test input whose parsed "
                             "predictions (at least --settle-after) all agree gets no more views")
    budget.add_argument("--settle-after", type=int, default=DEFAULTS.budget.settle_after,
                        help="(default: %(default)s)")
    budget.add_argument("--chunk-prompts", type=int, default=DEFAULTS.budget.chunk_prompts,
                        help="prompts per engine call; predictions are saved after each (default: %(default)s)")
    budget.add_argument("--workers", type=int, default=0,
                        help="engine processes, each with a GPU of its own (worker i: GPU i mod count); "
                             "0 = one per GPU found, one on CPU; on CPU, N > 1 share the cores (default: 0)")
    p.add_argument("--verbose", action="store_true",
                   help="show vLLM's own INFO log lines too (default: its warnings and errors only)")
    budget.add_argument("--fresh", action="store_true",
                        help="start over; by default a run folder with predictions.jsonl is resumed and "
                             "the work it records is skipped")


def resolve_prompt_format(args) -> None:
    """--encoder/--template from the model folder's arc_format.json where not given, said in the log;
    a given one that contradicts the file is kept, with a warning (the model will likely score 0)."""
    from .prompts import FORMAT_FILE, read_model_format

    recorded, problem = read_model_format(args.model)
    if problem:
        log(f"run: {problem}; using the command line's prompt format")
    defaults = {"encoder": DEFAULT_ENCODER, "template": DEFAULT_TEMPLATE}
    for key, default in defaults.items():
        given, trained = getattr(args, key), recorded.get(key)
        if given is None:
            setattr(args, key, trained or default)
        elif trained and given != trained:
            log(f"run: warning: --{key} {given} contradicts {Path(args.model) / FORMAT_FILE}, which says the "
                f"model was trained with {trained}: a model asked in another format rarely answers right")
    if recorded:
        log(f"run: prompt format from {Path(args.model) / FORMAT_FILE}: encoder {args.encoder}, "
            f"template {args.template}")


def settings_from_args(args) -> RunSettings:
    """The run's settings from its options: every option named like a setting (settings.py) goes to
    the group that owns it."""
    known = DEFAULTS.options()
    return RunSettings.of(**{name: value for name, value in vars(args).items() if name in known})


def cmd_run(args) -> int:
    started = time.monotonic()  # the time budget counts engine start-up too
    challenges = _load_challenges_or_exit(args.challenges)  # before the model: bad files fail fast
    if args.solutions:
        _load_solutions_or_exit(args.solutions)
    resolve_prompt_format(args)
    if args.verbose:
        os.environ["VLLM_LOGGING_LEVEL"] = "INFO"  # read when vllm is first imported, here and in workers
    from .engine import EngineSettings, EngineStartError, gpu_count, start_engine
    from .pipeline import ResumeError, check_resumable, run
    from .prompts import load_tokenizer
    from .submit import fallback_submission, write_json_atomic

    try:
        settings = settings_from_args(args)
        one_engine_only = settings.generation.mode == "beam" or uses_judge(settings.selection.selector)
        if args.workers > 1 and one_engine_only:
            raise ValueError("beam mode and judge selectors run on one engine: use --workers 1")
        if not args.fresh:
            check_resumable(args.out, settings, args.model)
    except (ValueError, ResumeError) as exc:
        sys.exit(f"error: {exc}")
    if not (Path(args.model) / "config.json").is_file():
        sys.exit(f"error: model folder {args.model}: no config.json")
    gpus = gpu_count()
    submission_path = args.out / "submission.json"
    if not submission_path.exists():
        write_json_atomic(submission_path, fallback_submission(challenges))  # in case the engine never starts
    adapters, ttt_info, lora_rank = {}, None, 0
    if settings.ttt.mode != "off":
        adapters, ttt_info, lora_rank = test_time_fine_tuning(args, challenges, settings, started, gpus)
    generation = settings.generation
    engine_settings = EngineSettings(
        model=args.model, dtype=args.dtype, max_model_len=settings.format.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization, cpu_kv_cache_gib=args.cpu_kv_cache_gib,
        enforce_eager=args.enforce_eager, seed=settings.views.seed, attention_backend=args.attention_backend,
        max_logprobs=max(20, generation.dfs.top_k if generation.mode == "dfs" else 0),
        max_lora_rank=lora_rank, lora_adapters=len(set(adapters.values())),
    )
    workers = args.workers or max(gpus, 1)
    if workers > 1 and one_engine_only:
        log(f"run: {gpus} GPUs, but beam mode and judge selectors run on one engine: using one")
        workers = 1
    tokenizer = load_tokenizer(args.model, log=log)
    problem = check_model_inputs(args, tokenizer, challenges)
    if problem:
        sys.exit(f"error: model folder {args.model}: {problem}; {submission_path} keeps the fallback attempts")
    try:
        if workers == 1:
            engine = start_engine(engine_settings, log=log)
        else:
            from .workers import EnginePool

            engine = EnginePool(engine_settings, workers, gpus, log=log)
    except Exception as exc:
        cause = str(exc) if isinstance(exc, EngineStartError) else \
            f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        log(f"run: the engine could not start: {cause}; {submission_path} keeps the fallback attempts")
        run_json = args.out / "run.json"
        if not run_json.exists():  # a resumed run's record stays; a fresh one says why it made nothing
            write_json_atomic(run_json, {"status": f"engine could not start: {cause}", "inputs": {
                "challenges": str(args.challenges), "model": str(args.model), "out": str(args.out)}})
        return 3
    inputs = {"challenges": str(args.challenges), "solutions": str(args.solutions) if args.solutions else None,
              "model": str(args.model), "out": str(args.out)}
    try:
        record = run(challenges, engine, tokenizer, args.out, settings, inputs, args.solutions, log=log,
                     fresh=args.fresh, started=started, adapters=adapters, ttt=ttt_info)
    finally:
        engine.close()
    log(f"wrote {submission_path} after {record['seconds']:.0f}s: {record['status']}")
    return 0 if record["status"] in ("done", "time budget reached") else 3


def check_model_inputs(args, tokenizer, challenges) -> str | None:
    """What would break the run after the engine's minutes of start-up, said before it: a tokenizer
    that cannot write the format, or larger than the embedding (the cause, returned); test inputs no
    prompt fits (a line each, and the run goes on)."""
    from .engine import model_context_limit
    from .prompts import get_template, tokenizer_problems, unfittable_test_inputs

    try:
        vocab_size = json.loads((Path(args.model) / "config.json").read_text()).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        vocab_size = None
    encoder = get_encoder(args.encoder)
    problems = tokenizer_problems(tokenizer, encoder, vocab_size if isinstance(vocab_size, int) else None)
    if problems:
        return "; ".join(problems)
    context = min(args.max_model_len, model_context_limit(args.model) or args.max_model_len)
    for line in unfittable_test_inputs(tokenizer, get_template(args.template), encoder, challenges.tasks, context):
        log(f"run: {line}")
    return None


def test_time_fine_tuning(args, challenges, settings: RunSettings, started: float, gpus: int):
    """Adapters for the run's tasks, trained (in a child process) before the engine starts, within
    ``--ttt-share`` of the time budget; returns (task id -> adapter folder, run.json's record, LoRA rank)."""
    import shutil

    from .engine import model_context_limit
    from .predictions import read_predictions
    from .ttt import AdapterJob, adapter_for_task, train_in_child, ttt_record

    folder = args.adapters_dir or args.out / "adapters"
    predictions_path = args.out / "predictions.jsonl"
    if args.fresh:
        shutil.rmtree(folder, ignore_errors=True)
    # A resumed run does not train tasks that already have predictions: their views so far came from
    # whatever model they had then (the base model, if training had not reached them).
    predicted = frozenset() if args.fresh or not predictions_path.exists() else frozenset(
        p.task_id for p in read_predictions(predictions_path))
    budget, ttt = settings.budget, settings.ttt
    deadline = started + ttt.share * (budget.time_budget - budget.reserve_seconds) if budget.time_budget else None
    asked = settings.format.max_model_len
    prompt_format = replace(settings.format, max_model_len=min(asked, model_context_limit(args.model) or asked))
    t0 = time.monotonic()
    job = AdapterJob(args.model, ttt, prompt_format, folder, settings.views.seed, deadline, predicted)
    trained = train_in_child(job, list(challenges.tasks.values()), log=log, gpus=gpus)
    adapters = {tid: path for tid in challenges.tasks if (path := adapter_for_task(trained, tid))}
    log(f"ttt: {len(adapters)} of {len(challenges.tasks)} tasks have an adapter"
        + (f" (shared: {folder})" if ttt.mode == "shared" else "")
        + f", after {time.monotonic() - t0:.0f}s of training; the others use the base model")
    rank = max((a.rank for a in trained.values()), default=0)
    return adapters, ttt_record(ttt, trained, len(challenges.tasks), time.monotonic() - t0), rank


def add_judge_arguments(p: argparse.ArgumentParser) -> None:
    judge = p.add_argument_group("the model as judge (selectors judge, judge+vote)")
    judge.add_argument("--judge-views", type=int,
                       help="augmented views each candidate is scored under (default: the run's, else "
                            f"{DEFAULTS.selection.judge_views})")
    judge.add_argument("--judge-top-k", type=int,
                       help="candidates judged per test input, in vote order (default: the run's, else "
                            f"{DEFAULTS.selection.judge_top_k})")
    judge.add_argument("--judge-scores", type=Path,
                       help="the judge's score cache (default: judge_scores.jsonl beside the predictions)")
    judge.add_argument("--model",
                       help="model folder: compute the judge scores missing from the cache with vLLM (and add "
                            "them to it); without it, only cached scores are used")
    judge.add_argument("--max-model-len", type=int, default=DEFAULTS.format.max_model_len,
                       help="with --model: context length, capped at the model's own (default: %(default)s)")


def judge_scores_for(args, challenges, predictions):
    """Judge scores from the cache beside the predictions; with --model, the missing ones are
    computed (the engine starts only when something is missing): in the run's prompt format and
    views (run.json beside the predictions). Returns (scores, JudgeResult)."""
    from .judge import CACHE_NAME, Scorer, run_judge

    run_json = args.predictions.parent / "run.json"
    recorded = orjson.loads(run_json.read_bytes()).get("settings", {}) if run_json.is_file() else {}
    given = {name: value for name, value in (("judge_views", args.judge_views), ("judge_top_k", args.judge_top_k))
             if value is not None}
    try:
        settings = RunSettings.from_record(recorded).replace(**given)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    cache = args.judge_scores or args.predictions.parent / CACHE_NAME
    if not cache.is_file() and not args.model:
        log(f"judge: no scores in {cache} and no --model to compute them: candidates are not judged")
        return None, None
    model = str(args.model) if args.model else None  # with --model, only that model's scores count
    result = run_judge(challenges, predictions, settings, cache, model=model, log=log)
    if result.missing and args.model:
        from .engine import EngineSettings, start_engine
        from .prompts import load_tokenizer

        engine = start_engine(EngineSettings(model=args.model, max_model_len=args.max_model_len), log=log)
        try:
            result = run_judge(challenges, predictions, settings, cache,
                               Scorer(engine, load_tokenizer(args.model, log=log)), model=model, log=log)
        finally:
            engine.close()
    result.report(log)
    return result.scores, result


def cmd_select(args) -> int:
    from .pipeline import reselect
    from .predictions import read_predictions

    challenges = _load_challenges_or_exit(args.challenges)
    scores = None
    if uses_judge(args.selector):
        scores, _ = judge_scores_for(args, challenges, list(read_predictions(args.predictions)))
    reselect(challenges, args.predictions, args.out, args.selector, args.solutions, log=log, judge_scores=scores)
    log(f"wrote {args.out / 'submission.json'}")
    return 0


def cmd_evaluate(args) -> int:
    from .compare import compare_methods, curves_svg, format_comparison, format_curves, subsample_curves
    from .metrics import evaluate, format_table
    from .predictions import read_predictions
    from .report import write_text_atomic
    from .select import get_selector
    from .submit import build_submission

    challenges = _load_challenges_or_exit(args.challenges)
    solutions = _load_solutions_or_exit(args.solutions)
    predictions = list(read_predictions(args.predictions))
    methods = list(SELECTORS) if "all" in args.methods else list(dict.fromkeys(args.methods))
    scores, judge_seconds = None, 0.0
    if any(uses_judge(m) for m in methods + [args.selector]):
        scores, result = judge_scores_for(args, challenges, predictions)
        judge_seconds = result.engine_seconds if result else 0.0
        if not scores:
            log("judge methods left out of the comparison: no judge scores")
            methods = [m for m in methods if not uses_judge(m)]
    submission = build_submission(challenges, predictions, get_selector(args.selector, scores))
    metrics = evaluate(solutions, submission, predictions)
    log(format_table(metrics, max_rows=args.rows))
    if args.out:
        from .submit import write_json_atomic

        write_json_atomic(args.out, metrics)
    engine_seconds = {m: judge_seconds for m in methods if uses_judge(m)}
    log("\nselection methods (engine s: judge scoring time this call; cached scores cost 0):")
    log(format_comparison(compare_methods(challenges, solutions, predictions, methods, scores, engine_seconds)))
    if args.seeds > 0 and predictions:
        curve_methods = [m for m in methods if not uses_judge(m)]
        rows = subsample_curves(challenges, solutions, predictions, curve_methods, seeds=args.seeds)
        log(f"\nscore against predictions per test input (subsampled, mean of {args.seeds} seeds):")
        log(format_curves(rows))
        plot = args.plot or args.predictions.parent / "selection_curves.svg"
        write_text_atomic(plot, curves_svg(rows))
        log(f"wrote {plot}")
    return 0


def cmd_report(args) -> int:
    from .predictions import read_predictions
    from .report import build_report, write_text_atomic

    challenges = _load_challenges_or_exit(args.challenges)
    solutions = _load_solutions_or_exit(args.solutions) if args.solutions else None
    predictions = list(read_predictions(args.predictions))
    from .judge import CACHE_NAME

    cached = (args.judge_scores or args.predictions.parent / CACHE_NAME).is_file()
    # Judge scores are shown whenever there are some, whatever method picks the attempts.
    scores = judge_scores_for(args, challenges, predictions)[0] if cached or uses_judge(args.selector) else None
    title = args.title or f"ARC report: {args.predictions}"
    write_text_atomic(args.out, build_report(challenges, predictions, solutions, args.selector, scores,
                                             args.sort_by, args.best_first, title))
    log(f"wrote {args.out} ({len(challenges.test_counts)} tasks)")
    return 0


def cmd_validate(args) -> int:
    from .submit import validate_submission

    challenges = _load_challenges_or_exit(args.challenges)
    try:
        submission = orjson.loads(args.submission.read_bytes())
    except orjson.JSONDecodeError as exc:
        log(f"submission {args.submission}: not valid JSON: {exc}")
        return 1
    problems = validate_submission(challenges, submission)
    for problem in problems:
        log(problem)
    n_tests = sum(challenges.test_counts.values())
    log(f"{'valid' if not problems else 'INVALID'}: {len(challenges.test_counts)} tasks, {n_tests} test inputs, "
        f"{len(problems)} problem(s)")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m submission",
        description="Offline ARC inference with vLLM: augment, infer, reverse, vote (AIRV) -> submission.json.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the main job: challenges -> predictions.jsonl -> submission.json",
                       description="Generate predictions for every test input under N augmented views, "
                                   "record them all, vote, and write submission.json (and metrics.json "
                                   "with --solutions).",
                       epilog="Exit status: 0 when the run finished or used up its time budget; 3 when it "
                              "stopped early (engine failure, every worker dead, SIGTERM) - submission.json "
                              "is valid in every case, built from all predictions made.")
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("select", help="re-choose the two attempts from a saved predictions.jsonl",
                       description="Rebuild submission.json from predictions.jsonl alone; no engine needed.")
    p.add_argument("--challenges", type=_existing_file, required=True, help="the challenges file of the run")
    p.add_argument("--predictions", type=_existing_file, required=True, help="predictions.jsonl of a run")
    p.add_argument("--out", type=Path, required=True, help="folder for submission.json (and metrics.json)")
    p.add_argument("--solutions", type=_existing_file, help="also write and print metrics.json")
    p.add_argument("--selector", choices=sorted(SELECTORS), default=DEFAULTS.selection.selector,
                   help=_SELECTOR_HELP + " (default: %(default)s)")
    add_judge_arguments(p)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("evaluate", help="metrics of a predictions file against solutions",
                       description="Select from predictions.jsonl and print the metrics table; then compare "
                                   "the selection methods (score, pass_n, mean rank of the correct grid, engine "
                                   "time) and print and plot pass_n and score against the number of predictions "
                                   "per test input. Judge methods need cached judge scores or --model.")
    p.add_argument("--challenges", type=_existing_file, required=True)
    p.add_argument("--solutions", type=_existing_file, required=True)
    p.add_argument("--predictions", type=_existing_file, required=True)
    p.add_argument("--selector", choices=sorted(SELECTORS), default=DEFAULTS.selection.selector,
                   help="method of the per-task table and --out: " + _SELECTOR_HELP + " (default: %(default)s)")
    p.add_argument("--methods", nargs="+", choices=["all", *SELECTORS], default=["all"],
                   help="methods to compare (default: all; judge methods only with scores)")
    p.add_argument("--rows", type=int, default=40, help="task rows in the table, worst first (default: %(default)s)")
    p.add_argument("--out", type=Path, help="also write the metrics as JSON here")
    p.add_argument("--seeds", type=int, default=5,
                   help="subsampling draws per point of the curve; 0 = no curve (default: %(default)s)")
    p.add_argument("--plot", type=Path,
                   help="SVG plot of the curve (default: selection_curves.svg beside the predictions)")
    add_judge_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="a self-contained HTML report of a predictions file",
                       description="One HTML file that opens offline: a summary, an index of every task, and per "
                                   "task its train pairs, test inputs, true outputs (with --solutions), the two "
                                   "attempts and the top candidates with their votes and scores.")
    p.add_argument("--challenges", type=_existing_file, required=True)
    p.add_argument("--predictions", type=_existing_file, required=True)
    p.add_argument("--solutions", type=_existing_file, help="show true outputs and sort by score")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--sort-by", choices=SORT_KEYS, default="score",
                   help="task order, worst first: score, pass_n, agreement (top vote share), parsed (share of "
                        "predictions that parse), task (id) (default: %(default)s)")
    p.add_argument("--best-first", action="store_true", help="sort best first instead")
    p.add_argument("--selector", choices=sorted(SELECTORS), default=DEFAULTS.selection.selector,
                   help="method whose attempts and ranking are shown (default: %(default)s)")
    p.add_argument("--title", help="page title (default: names the predictions file)")
    add_judge_arguments(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("validate", help="check a submission.json against a challenges file",
                       description="Exit 0 for a complete, valid submission; 1 with one line per problem.")
    p.add_argument("--challenges", type=_existing_file, required=True)
    p.add_argument("--submission", type=_existing_file, required=True)
    p.set_defaults(func=cmd_validate)

    from .preview import PROMPT_DESCRIPTION, PROMPT_EPILOG, PROMPT_HELP, add_prompt_arguments, cmd_prompt

    p = sub.add_parser("prompt", help=PROMPT_HELP, description=PROMPT_DESCRIPTION, epilog=PROMPT_EPILOG)
    add_prompt_arguments(p)
    p.set_defaults(func=cmd_prompt)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
