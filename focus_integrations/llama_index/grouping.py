"""Retrieved images grouped by their product or document: FOCUS separates items, not photos of one item.

:class:`GroupImagesByMetadata` is a node postprocessor (``node_postprocessors=[...]`` of any query engine;
:func:`~focus_integrations.llama_index.rag.multimodal_query_engine` adds it by default). Retrieved image nodes
that share the value of a metadata field (``group_by="auto"``: ``product_id``, ``document_id``, ``doc_id``, or
the node's ``ref_doc_id``, the first that two retrieved images share) are marked with that group; the
response synthesizer then hands their images to the LLM as :class:`GroupedImageBlock`, and
``FocusMultiModalLLM`` decodes with one FOCUS row per group.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle

from focus_integrations.groups import check_group_by, metadata_group_keys
from focus_integrations.llama_index.conversion import GroupedImageBlock


class GroupedImageNode(ImageNode):
    """An ``ImageNode`` whose image reaches the LLM as a :class:`GroupedImageBlock` of ``group``."""

    group: str | int | None = None

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list[Any]:
        blocks = super().get_content_blocks(metadata_mode)
        if self.group is None:
            return blocks
        return [
            GroupedImageBlock.model_construct(**block.__dict__, group=self.group)
            if type(block) is ImageBlock
            else block
            for block in blocks
        ]


def _grouping_metadata(node: ImageNode) -> dict[str, Any]:
    metadata = dict(node.metadata)
    if node.ref_doc_id is not None:
        metadata.setdefault("ref_doc_id", node.ref_doc_id)
    return metadata


class GroupImagesByMetadata(BaseNodePostprocessor):
    """Mark retrieved image nodes that share ``group_by``'s value (``"auto"``, a field name, or None: off)."""

    group_by: str | None = "auto"

    @classmethod
    def class_name(cls) -> str:
        return "GroupImagesByMetadata"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        check_group_by(self.group_by)
        positions = [i for i, n in enumerate(nodes) if isinstance(n.node, ImageNode)]
        keys = metadata_group_keys([_grouping_metadata(nodes[i].node) for i in positions], self.group_by)
        out = list(nodes)
        for position, key in zip(positions, keys):
            if key is None:
                continue
            node = nodes[position].node
            grouped = GroupedImageNode.model_construct(**node.__dict__, group=key)
            out[position] = NodeWithScore(node=grouped, score=nodes[position].score)
        return out
