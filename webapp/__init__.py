"""The Gradio studio: its page (`page`, one builder per tab in `tabs/`, shared controls in `controls`), the
model picker and cache (`registry`), thin tab handlers that build a `studio` request and run its workflow
(`handlers`), the named API (`api`), jobs and cancellation (`jobs`), and the page's progress and toasts
(`progress`).

Arrows point one way: webapp -> studio -> models, music; `studio/` and `models/` know nothing of the app.
"""
