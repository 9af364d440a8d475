"""Example texts for the text box, each with the edit that the Compare page offers next to it."""

EXAMPLES = {
    "A gripping, funny and beautifully acted film. I loved every minute of it.": (
        "A gripping, funny and beautifully acted film. I hated every minute of it."
    ),
    "The plot is thin and the jokes fall flat, although the soundtrack is lovely.": (
        "The plot is thin and the jokes fall flat, and the soundtrack is awful."
    ),
    "Not bad at all: I expected a disaster and got one of the best movies of the year.": (
        "Bad: I expected a disaster and got one of the worst movies of the year."
    ),
    "Dull, lifeless and far too long.": "Lively, moving and not a minute too long.",
    "The capital of France is": "The capital of Italy is",
}
