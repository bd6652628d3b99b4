"""Gradio's side of input checks: components that refuse a bad raw API value with a message naming the
field (the checks of values themselves are `studio.checks`)."""
from __future__ import annotations

import math

import gradio as gr

from studio.checks import shown


def name_bad_values(component: gr.components.Component, label: str | None = None) -> None:
    """Make `component` refuse a bad raw API value (a string for a slider, NaN for a number) with a
    `gr.Error` naming the field, where Gradio's own check would answer `error: null`, and prefix
    Gradio's own range errors ("Value 61 is greater than maximum value 60.0.") with the field's name."""
    label = label or getattr(component, "label", None) or type(component).__name__
    original = component.preprocess
    numeric = isinstance(component, (gr.Number, gr.Slider))

    def preprocess(payload):
        if numeric and payload is not None:
            if isinstance(payload, bool) or not isinstance(payload, (int, float)):
                raise gr.Error(f"{label} must be a number, got {shown(payload)}.", print_exception=False)
            if not math.isfinite(payload):
                raise gr.Error(f"{label} must be a finite number, got {shown(payload)}.", print_exception=False)
        try:
            return original(payload)
        except gr.Error as error:
            raise gr.Error(f"{label}: {error.message}", print_exception=False) from None
        except Exception:  # noqa: BLE001 (Gradio's own type checks: say which field, never `error: null`)
            raise gr.Error(f"{label}: {str(payload)[:80]!r} is not a value this field takes.",
                           print_exception=False) from None

    component.preprocess = preprocess
