"""Modes per field and per value (off, shadow, suggest, auto): checked once at start, then applied to each decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.classical.calibration import ThresholdChoice
from agents.errors import TriageError
from agents.types import Action, FieldAction, Mode

FIELDS = ("category", "priority", "team")
MODES: tuple[Mode, ...] = ("off", "shadow", "suggest", "auto")
MIN_COVERED = 10  # held-out rows a value needs at its threshold before `auto` may apply it on its own figures


class ModeInvalid(TriageError):
    """A mode setting names a field, value or mode that does not exist."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"TRIAGE_FIELD_MODES {key!r}: {problem}")


class ModeRefused(TriageError):
    """`auto` was asked for a field or value whose held-out precision at its threshold is below the target."""

    def __init__(self, key: str, precision: float | None, target: float, detail: str) -> None:
        self.key, self.precision, self.target, self.detail = key, precision, target, detail
        super().__init__(f"auto refused for {key}: {detail} (set it to suggest or shadow, or retrain with more data)")


def auto_problem(choice: ThresholdChoice | None, value: str | None = None) -> tuple[float | None, str] | None:
    """Why held-out figures do not allow `auto` for a field (or one value of it); None when they do."""
    if choice is None:
        return None, "no held-out figures (the models were trained before thresholds were recorded)"
    target = choice.target_precision
    if value is None:
        if choice.threshold > 1:
            return choice.precision, f"no threshold reaches the precision target {target:.2f} on held-out rows"
        if choice.precision < target:
            return choice.precision, f"held-out precision {choice.precision:.3f} is below the target {target:.2f}"
        return None
    figures = choice.per_value.get(value)
    if figures is None or figures.precision is None or figures.covered < MIN_COVERED:
        covered = figures.covered if figures else 0
        return None, f"{covered} held-out row(s) predicted {value} at the threshold, fewer than {MIN_COVERED}"
    if figures.precision < target:
        return figures.precision, (
            f"held-out precision {figures.precision:.3f} at the threshold {choice.threshold:.2f} "
            f"({figures.covered} rows) is below the target {target:.2f}"
        )
    return None


@dataclass(frozen=True)
class ModeTable:
    """The effective mode of every field and value, and why `auto` was not granted where the default asked for it."""

    default: Mode = "auto"
    fields: dict[str, Mode] = field(default_factory=dict)
    values: dict[tuple[str, str], Mode] = field(default_factory=dict)
    writes_enabled: bool = True
    demoted: dict[str, str] = field(default_factory=dict)  # field -> why its default `auto` became `suggest`

    @classmethod
    def build(
        cls,
        default: Mode,
        configured: dict[str, Mode],
        thresholds: dict[str, ThresholdChoice],
        labels: dict[str, list[str]],
        *,
        writes_enabled: bool = True,
        single_label: dict[str, str] | None = None,
    ) -> ModeTable:
        """Parse `field` and `field:value` keys, and check every `auto` against the held-out figures.

        An `auto` set by name is refused (ModeRefused, with the figure); an `auto` that only comes from the default
        becomes `suggest` for that field, and every result says why.
        """
        fields: dict[str, Mode] = {}
        values: dict[tuple[str, str], Mode] = {}
        constant = single_label or {}  # fields whose training rows all had one label: "always right", learnt nothing

        def problem_of(name: str, value: str | None = None) -> tuple[float | None, str] | None:
            if name in constant:
                return None, f"every training row had {name} {constant[name]}: a constant, not a learnt decision"
            return auto_problem(thresholds.get(name), value)

        for key, mode in configured.items():
            name, _, value = key.partition(":")
            if name not in FIELDS:
                raise ModeInvalid(key, f"{name!r} is not a field; fields are {', '.join(FIELDS)}")
            if mode not in MODES:
                raise ModeInvalid(key, f"{mode!r} is not a mode; modes are {', '.join(MODES)}")
            if not value:
                fields[name] = mode
                continue
            if value not in labels.get(name, []):
                raise ModeInvalid(key, f"{value!r} is not a {name}; known: {', '.join(labels.get(name, []))}")
            values[(name, value)] = mode
        asked: list[tuple[str, str | None, Mode]] = [(name, None, mode) for name, mode in fields.items()]
        asked += [(name, value, mode) for (name, value), mode in values.items()]
        for name, maybe_value, mode in asked:  # every auto set by name, field-wide or for one value
            if mode == "auto" and (problem := problem_of(name, maybe_value)):
                target = thresholds[name].target_precision if name in thresholds else 0.0
                key = f"{name}:{maybe_value}" if maybe_value else name
                raise ModeRefused(key, problem[0], target, problem[1])
        demoted = {}
        if default == "auto":
            for name in FIELDS:
                if name not in fields and (problem := problem_of(name)):
                    demoted[name] = problem[1]
        return cls(default, fields, values, writes_enabled, demoted)

    def field_mode(self, name: str) -> tuple[Mode, str]:
        """The mode of a field for values not configured on their own, and where it came from."""
        if name in self.fields:
            return self.fields[name], f"mode {self.fields[name]} for {name}"
        if name in self.demoted:
            return "suggest", f"default mode auto not granted for {name} ({self.demoted[name]}): suggest"
        return self.default, f"default mode {self.default}"

    def mode_of(self, name: str, value: str) -> tuple[Mode, str]:
        """The mode for this field and value, and where it came from."""
        if (name, value) in self.values:
            return self.values[(name, value)], f"mode {self.values[(name, value)]} for {name} {value}"
        return self.field_mode(name)

    def act(
        self, name: str, label: str, confidence: float, choice: ThresholdChoice | None, hold: str | None
    ) -> FieldAction:
        """What to do with one decision: `hold` is a reason the whole ticket must not be applied (a human looks)."""
        mode, source = self.mode_of(name, label)
        threshold = choice.threshold if choice is not None else None
        action: Action
        if mode == "off":
            return FieldAction(mode=mode, action="none", reason=f"{source}: not recorded", threshold=threshold)
        if mode == "shadow":
            reason = f"{source}: recorded for agreement only"
            return FieldAction(mode=mode, action="shadow", reason=reason, threshold=threshold)
        if not self.writes_enabled:
            reason = "writes are switched off (TRIAGE_WRITES_ENABLED)"
            return FieldAction(mode=mode, action="shadow", reason=reason, threshold=threshold)
        if mode == "suggest":
            return FieldAction(mode=mode, action="suggested", reason=source, threshold=threshold)
        if threshold is None:
            action, reason = "suggested", f"{source}, but the field has no threshold"
        elif hold:
            action, reason = "suggested", f"{source}, but {hold}"
        elif confidence < threshold:
            action, reason = "suggested", f"{source}, but confidence {confidence:.2f} is under {threshold:.2f}"
        else:
            action, reason = "applied", f"{source}: confidence {confidence:.2f} at or above {threshold:.2f}"
        return FieldAction(mode=mode, action=action, reason=reason, threshold=threshold)
