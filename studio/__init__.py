"""The studio's workflows, below the page and without Gradio: one typed request per task
(`studio.requests`), each workflow from request to written files and result (`loops`, `text_to_audio`,
`audio_to_audio`, `listening`), and what they share: output files (`outputs`), training captions
(`captions`), the listening test's records (`trials`), the compute budget (`budget`), progress and
warnings (`progress`).

Arrows point down: webapp -> studio -> models, music; nothing here imports Gradio.
"""
