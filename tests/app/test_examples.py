"""Examples follow the model's task: a model switch replaces an untouched example of the previous task,
never text the user typed."""

from __future__ import annotations

from dashboard import examples


def test_each_task_has_its_own_examples(tiny_bert, tiny_gpt2):
    reviews, prompts = examples.for_task(tiny_bert.task), examples.for_task(tiny_gpt2.task)
    assert "I loved every minute" in examples.default_text(tiny_bert.task)
    assert examples.default_text(tiny_gpt2.task) == "The capital of France is"
    assert not set(reviews) & set(prompts)
    assert examples.for_task(None) == examples.EXAMPLES  # a task without examples of its own: all of them


def test_a_switch_replaces_only_an_untouched_example(tiny_bert, tiny_gpt2):
    review = examples.default_text(tiny_bert.task)
    edited_review = examples.for_task(tiny_bert.task)[review]
    assert examples.follow_model(review, tiny_bert.task, tiny_gpt2.task) == "The capital of France is"
    assert examples.follow_model(edited_review, tiny_bert.task, tiny_gpt2.task) == "The capital of France is"
    assert examples.follow_model("", tiny_bert.task, tiny_gpt2.task) == "The capital of France is"
    typed = review + " Really."
    assert examples.follow_model(typed, tiny_bert.task, tiny_gpt2.task) is None
    # same task: nothing to change; back to a classifier: the prompt becomes a review
    assert examples.follow_model(review, tiny_bert.task, tiny_bert.task) is None
    assert examples.follow_model("The capital of France is", tiny_gpt2.task, tiny_bert.task) == review
