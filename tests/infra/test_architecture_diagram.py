"""The architecture picture in the README is the one the current stacks produce."""

from __future__ import annotations

from cdk_synth import STACKS, Synth

from stacks.diagram import ARCHITECTURE_DOC, BEGIN, END, README, Assembly, mermaid, render


def _templates(dev: Synth) -> dict:
    return {f"{dev.config.prefix}-{kind}": dev.templates[kind] for kind in STACKS}


def test_readme_and_docs_show_the_current_architecture(dev: Synth):
    block = render(_templates(dev), dev.config.prefix)
    for path in (README, ARCHITECTURE_DOC):
        text = path.read_text()
        current = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
        assert current == block, f"{path.name} is stale: run `python -m stacks.diagram`"


def test_the_real_time_path_is_drawn(dev: Synth):
    assembly = Assembly(_templates(dev))
    labels = {(assembly.nodes[a].label, assembly.nodes[b].label) for a, b in assembly.edges()}
    names = dev.config.names
    assert (f"REST API: {names.event_tracker_api}", f"Lambda: {names.function('event_tracker')}") in labels
    assert (f"Lambda: {names.function('event_tracker')}", f"SNS: {names.events_topic}") in labels
    assert (f"SNS: {names.events_topic}", f"SQS: {names.feature_queue}") in labels
    assert (f"SQS: {names.feature_queue}", f"Lambda: {names.function('feature_writer')}") in labels
    assert (f"Lambda: {names.function('feature_writer')}", f"MemoryDB: {names.memorydb_cluster}") in labels
    assert "flowchart LR" in mermaid(_templates(dev), dev.config.prefix)
