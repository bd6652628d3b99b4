"""The page's side of a workflow's reports (`studio.progress.Feedback`): Gradio's progress bar, its
warning and info toasts, and the check that stops a request whose Gradio event was cancelled."""
from __future__ import annotations

import gradio as gr

from studio.progress import Feedback, Progress
from webapp.jobs import event_cancelled_check


def page_feedback(progress: Progress | None) -> Feedback:
    """Reports of one request to the page: `progress` (a `gr.Progress`), toasts, cancellation."""
    return Feedback(progress=progress, cancelled=event_cancelled_check(), warn=gr.Warning, inform=gr.Info)
