"""One builder per part of the page: the header and model pickers (`models`), the Loops, Text to audio,
Audio to audio and Listening test tabs, and the experimenter's page. `webapp.page` assembles them."""
