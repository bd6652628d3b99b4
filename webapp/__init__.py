"""The Gradio studio: its page (`page`, one builder per tab in `tabs/`, shared controls in `controls`) and its
logic, kept apart from the layout: model picker and cache (`registry`),
input checks (`checks`), output files with their parameters (`files`), spectrogram pictures
(`display`), the tab handlers (`handlers`) and the blind listening test (`listening_test`).

Arrows point one way: webapp -> models; `models/` knows nothing of the app.
"""
