"""The names a node's subgraphs (a Loop's body) read from the graphs around them.

An ONNX subgraph may use any value of an enclosing graph by name without listing it as
an input. The pre-pass must see those reads as inputs of the node that owns the
subgraph: otherwise it drops their producers as dead, leaves out the constants they
name, and renames a bypassed Identity's output everywhere but there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import onnx

_SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The node's graph-valued attributes (a Loop's body, an If's branches)."""
    graphs: list[onnx.GraphProto] = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attribute.graphs)
    return graphs


def _defined(graph: onnx.GraphProto) -> set[str]:
    names = {value.name for value in graph.input} | {init.name for init in graph.initializer}
    names |= {init.values.name for init in graph.sparse_initializer}
    names.update(name for node in graph.node for name in node.output if name)
    return names


def outer_reads(graph: onnx.GraphProto) -> list[str]:
    """Names ``graph`` (and the subgraphs nested in it) read without defining them, in first-use order."""
    defined = _defined(graph)
    reads: dict[str, None] = {}
    for node in graph.node:
        for name in [*node.input, *implicit_inputs(node)]:
            if name and name not in defined:
                reads.setdefault(name, None)
    for value in graph.output:
        if value.name not in defined:
            reads.setdefault(value.name, None)
    return list(reads)


def implicit_inputs(node: onnx.NodeProto) -> list[str]:
    """Values of the enclosing graphs that the node's subgraphs read by name."""
    reads: dict[str, None] = {}
    for graph in subgraphs(node):
        for name in outer_reads(graph):
            reads.setdefault(name, None)
    return list(reads)


def rename_outer_reads(node: onnx.NodeProto, renames: Mapping[str, str]) -> None:
    """Apply ``renames`` to the enclosing-graph names the node's subgraphs read (in place)."""
    if not renames:
        return
    for graph in subgraphs(node):
        defined = _defined(graph)
        local = {old: new for old, new in renames.items() if old not in defined}
        if not local:
            continue
        for inner in graph.node:
            for index, name in enumerate(inner.input):
                if name in local:
                    inner.input[index] = local[name]
            rename_outer_reads(inner, local)
        for value in graph.output:
            if value.name in local:
                # A body output that is an outer value: read it through an Identity of the new name.
                identity = graph.node.add()
                identity.op_type = "Identity"
                identity.input.append(local[value.name])
                identity.output.append(value.name)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs nested in it, outer nodes first."""
    for node in graph.node:
        yield node
        for inner in subgraphs(node):
            yield from all_nodes(inner)
