"""Every setting of a run in one tree, each default written once.

``RunSettings`` groups them by concern: the prompt format the model was trained on, the views of
each test input (the augmentation plan), generation, selection, the time budget and test-time
fine-tuning. The command line reads its defaults from these classes (cli.py), run.json records the
tree, and a resumed run or a later ``select --selector judge`` reads it back (``from_record``).

``RunSettings.of(**options)`` builds one from the names of ``python -m submission run``'s options
(dashes as underscores: ``RunSettings.of(augmentations=16, time_budget=None)``), each given to the
group that owns it; ``options()`` is the inverse. Test-time fine-tuning's options carry a ``ttt_``
prefix (``--ttt`` itself is ``ttt_mode``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .dfs import DfsSettings
from .encoders import DEFAULT_ENCODER, get_encoder
from .engine import DEFAULT_MAX_MODEL_LEN
from .prompts import DEFAULT_TEMPLATE, get_template
from .select import DEFAULT_SELECTOR, get_selector

DEFAULT_TIME_BUDGET = 11 * 3600  # Kaggle stops a kernel at 12 h; the rest is install, start-up and margin
MODES = ("greedy", "sample", "beam", "dfs")
TTT_MODES = ("off", "task", "shared")


@dataclass(frozen=True)
class PromptFormat:
    """How a prompt is written: what the model was trained on (its folder's arc_format.json). The
    run, the judge and test-time fine-tuning all render through it."""

    encoder: str = DEFAULT_ENCODER  # grid text format (encoders.py)
    template: str = DEFAULT_TEMPLATE  # prompt template (prompts.py)
    max_model_len: int = DEFAULT_MAX_MODEL_LEN  # context asked of the engine, capped at the model's own

    def __post_init__(self):
        get_encoder(self.encoder), get_template(self.template)  # unknown names fail here, naming the choices
        if self.max_model_len < 1:
            raise ValueError("the context (--max-model-len) must be at least 1 token")


@dataclass(frozen=True)
class ViewSettings:
    """The augmentation plan of every test input (augment.plan_augmentations)."""

    augmentations: int = 8  # views per test input: the 8 dihedral ones first
    permute_background: bool = False  # colour permutations may move colour 0 too
    shuffle_order: bool = True  # the extra views shuffle the train examples
    seed: int = 0  # of the plan, and of each prompt's sampling

    def __post_init__(self):
        if self.augmentations < 1:
            raise ValueError("augmentations (views per test input) must be at least 1")


@dataclass(frozen=True)
class GenerationSettings:
    mode: str = "auto"  # greedy | sample | beam | dfs; auto: greedy at temperature 0, else sample
    samples: int = 1  # completions per prompt
    temperature: float = 0.0  # 0 is greedy
    max_tokens: int | None = None  # cap on the per-task answer budget
    beam_width: int = 4  # beam mode: the beams of a prompt are its candidates (samples 0..width-1)
    # dfs mode (dfs.py): every completion of probability >= min_prob, at most dfs_max_candidates per
    # prompt (the greedy one included), found in at most dfs_max_rounds engine calls after the greedy one
    min_prob: float = 0.1
    dfs_max_candidates: int = 8
    dfs_max_rounds: int = 4
    restrict_vocabulary: bool = False  # decode only the answer format's tokens (prompts.answer_vocabulary)

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if self.temperature == 0 and self.samples > 1:
            raise ValueError("greedy decoding (temperature 0) gives one sample per prompt; set --temperature > 0")
        if self.mode == "auto":
            object.__setattr__(self, "mode", "greedy" if self.temperature == 0 else "sample")
        if self.mode not in MODES:
            raise ValueError(f"unknown generation mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.mode == "greedy" and self.temperature != 0:
            raise ValueError("greedy mode decodes at temperature 0; use --mode sample for --temperature > 0")
        if self.mode == "sample" and self.temperature == 0:
            raise ValueError("sample mode needs --temperature > 0")
        if self.mode == "beam" and (self.samples != 1 or self.beam_width < 1):
            raise ValueError("beam mode gives --beam-width candidates per prompt: leave --samples at 1 and "
                             "set --beam-width to at least 1")
        if self.mode == "dfs":
            if self.samples != 1 or self.temperature != 0:
                raise ValueError("dfs mode enumerates from greedy passes: leave --samples at 1 and --temperature at 0")
            _ = self.dfs  # validates min_prob and the caps
        if self.restrict_vocabulary and self.mode == "beam":
            raise ValueError("--restrict-vocabulary works in greedy, sample and dfs modes, not beam "
                             "(vLLM's beam search takes no allowed tokens)")

    @property
    def completions_per_prompt(self) -> int:
        """Completions every prompt gets (sample indices 0..n-1). A dfs prompt gets a variable
        number, its most probable one always: sample 0 marks the prompt done."""
        return self.beam_width if self.mode == "beam" else self.samples

    @property
    def dfs(self) -> DfsSettings:
        return DfsSettings(self.min_prob, self.dfs_max_candidates, self.dfs_max_rounds)


@dataclass(frozen=True)
class SelectionSettings:
    selector: str = DEFAULT_SELECTOR  # how the two attempts are chosen (select.py)
    judge_views: int = 8  # judge selectors: M views each candidate is scored under (judge.py)
    judge_top_k: int = 4  # judge selectors: K candidates judged per test input, in vote order

    def __post_init__(self):
        get_selector(self.selector)
        if self.judge_views < 1 or self.judge_top_k < 1:
            raise ValueError("judge views and top-k must be at least 1")


@dataclass(frozen=True)
class BudgetSettings:
    """Time, rounds and chunks (rounds.py, pipeline.py)."""

    time_budget: float | None = DEFAULT_TIME_BUDGET  # seconds from the start of the run; None (or 0): no limit
    reserve_seconds: float = 60.0  # kept back from generation for the final selection and writes
    views_per_round: int = 8  # round 1 is the 8 dihedral views
    adaptive: bool = True  # settled test inputs get no views after round 1
    settle_after: int = 8  # parsed predictions, all agreeing, that settle a test input
    chunk_prompts: int = 1024  # prompts per engine call; results are saved after each

    def __post_init__(self):
        if not self.time_budget:
            object.__setattr__(self, "time_budget", None)
        if self.views_per_round < 1 or self.chunk_prompts < 1:
            raise ValueError("views per round and chunk size must be at least 1")


@dataclass(frozen=True)
class TttSettings:
    """Test-time fine-tuning (ttt.py): a LoRA adapter per task (or one shared) before inference."""

    mode: str = "off"  # off | task (an adapter per test task) | shared (one adapter for all)
    rank: int = 8
    alpha: float = 16.0
    steps: int = 32  # optimizer steps per adapter (shared mode: of the one adapter)
    min_steps: int = 8  # fewer than this is not worth an adapter: the task keeps the base model
    learning_rate: float = 1e-3
    examples_per_step: int = 4  # augmented leave-one-out examples per optimizer step
    share: float = 0.5  # of the time budget (after the reserve) that training may use
    micro_tokens: int = 8192  # padded tokens per forward pass

    def __post_init__(self):
        if self.mode not in TTT_MODES:
            raise ValueError(f"unknown test-time fine-tuning mode {self.mode!r}; choose from {', '.join(TTT_MODES)}")
        if self.rank < 1 or self.steps < 1 or self.examples_per_step < 1 or not 1 <= self.min_steps <= self.steps:
            raise ValueError("ttt rank, steps and examples per step must be at least 1, and min steps between 1 "
                             "and steps")
        if not 0 < self.share < 1:
            raise ValueError(f"ttt share of the time budget must be between 0 and 1, got {self.share}")
        if self.learning_rate <= 0:
            raise ValueError("ttt learning rate must be positive")


# RunSettings' groups, and the prefix each group's fields carry as options
_GROUPS = {"format": (PromptFormat, ""), "views": (ViewSettings, ""), "generation": (GenerationSettings, ""),
           "selection": (SelectionSettings, ""), "budget": (BudgetSettings, ""), "ttt": (TttSettings, "ttt_")}


@dataclass(frozen=True)
class RunSettings:
    format: PromptFormat = field(default_factory=PromptFormat)
    views: ViewSettings = field(default_factory=ViewSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    ttt: TttSettings = field(default_factory=TttSettings)

    @classmethod
    def of(cls, **options) -> "RunSettings":
        """From option names (those of ``run``, dashes as underscores), each to its group; unknown
        names raise TypeError naming them."""
        groups, unknown = {}, set(options)
        for name, (group, prefix) in _GROUPS.items():
            given = {f.name: options[prefix + f.name] for f in fields(group) if prefix + f.name in options}
            unknown -= {prefix + key for key in given}
            groups[name] = group(**given)
        if unknown:
            raise TypeError(f"unknown run setting(s): {', '.join(sorted(unknown))}")
        return cls(**groups)

    def options(self) -> dict:
        """Every setting by option name: what ``of`` takes."""
        return recorded_options(asdict(self))

    def replace(self, **options) -> "RunSettings":
        return RunSettings.of(**{**self.options(), **options})

    @classmethod
    def from_record(cls, record: dict) -> "RunSettings":
        """From run.json's "settings" (the tree); what it lacks keeps its default."""
        defaults = cls().options()
        return cls.of(**{k: v for k, v in recorded_options(record).items() if k in defaults})

    @property
    def completions_per_prompt(self) -> int:
        return self.generation.completions_per_prompt


def recorded_options(record: dict) -> dict:
    """run.json's "settings" tree as option names (as ``RunSettings.options()`` gives them)."""
    return {_GROUPS[name][1] + key: value for name, group in record.items()
            if name in _GROUPS and isinstance(group, dict) for key, value in group.items()}
