"""POST /v1/ai/embeddings (embed and store texts), POST /v1/ai/embeddings/search,
GET /v1/ai/embeddings/similar/{conversation_id}, POST /v1/ai/embeddings/clusters and
GET /v1/ai/embeddings/clusters/{clustering_id}."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, Principal, error_responses, idempotency, not_found, require
from myhibachi.plugins.embeddings import service
from myhibachi.plugins.embeddings.schemas import (
    ClusterRequest, Clustering, EmbedRequest, EmbedResponse, Embedded, Hit, SearchRequest, SearchResponse, SimilarResponse,
)


def add_routes(router: APIRouter, ctx) -> None:
    settings = ctx.plugins.get("embeddings").settings

    @router.post("/ai/embeddings", response_model=EmbedResponse, status_code=201,
                 responses=error_responses(401, 403, 422, 503), summary="Embed texts and store them for search")
    @idempotency.idempotent(required=False)
    async def create_embeddings(body: EmbedRequest, conn: Conn = Connection,
                                _: Principal = Depends(require("ai.write"))) -> EmbedResponse:
        rows = await service.store(conn, ctx, [i.model_dump() for i in body.items])
        port = ctx.ports.embeddings
        return EmbedResponse(model=port.model, dimensions=port.dimensions, results=[Embedded(**r) for r in rows])

    @router.post("/ai/embeddings/search", response_model=SearchResponse,
                 responses=error_responses(401, 403, 422, 503), summary="The stored texts nearest a query in meaning")
    async def search_embeddings(body: SearchRequest, limit: int = LIMIT, cursor: str | None = CURSOR,
                                conn: Conn = Connection,
                                _: Principal = Depends(require("ai.read"))) -> SearchResponse:
        rows, after = await service.search(conn, ctx, body.query, limit=limit, cursor=cursor, kind=body.kind,
                                           ef_search=settings.ef_search)
        return SearchResponse(model=ctx.ports.embeddings.model, items=[Hit(**r) for r in rows], next_cursor=after)

    @router.get("/ai/embeddings/similar/{conversation_id}", response_model=SimilarResponse,
                responses=error_responses(401, 403, 404, 422), summary="The conversations nearest one in meaning")
    async def similar_embeddings(conversation_id: str, limit: int = LIMIT, cursor: str | None = CURSOR,
                                 conn: Conn = Connection,
                                 _: Principal = Depends(require("ai.read"))) -> SimilarResponse:
        page = await service.similar(conn, ctx, conversation_id, limit=limit, cursor=cursor,
                                     ef_search=settings.ef_search)
        if page is None:
            raise not_found("conversation", conversation_id)
        rows, after = page
        return SimilarResponse(conversation_id=conversation_id, items=[Hit(**r) for r in rows], next_cursor=after)

    @router.post("/ai/embeddings/clusters", response_model=Clustering, status_code=201,
                 responses=error_responses(401, 403, 422), summary="Group the stored conversations by meaning")
    async def cluster_embeddings(body: ClusterRequest, conn: Conn = Connection,
                                 _: Principal = Depends(require("ai.write"))) -> Clustering:
        from myhibachi.plugins.embeddings import clusters  # numpy, loaded when clustering, not at start-up

        run = await clusters.cluster(conn, ctx, kinds=body.kinds, clusters=body.clusters,
                                     most=settings.cluster_texts)
        return Clustering(**run)

    @router.get("/ai/embeddings/clusters/{clustering_id}", response_model=Clustering,
                responses=error_responses(401, 403, 404, 422), summary="A clustering of conversations and its clusters")
    async def clustering_embeddings(clustering_id: uuid.UUID, conn: Conn = Connection,
                                    _: Principal = Depends(require("ai.read"))) -> Clustering:
        from myhibachi.plugins.embeddings import clusters

        run = await clusters.clustering(conn, clustering_id)
        if run is None:
            raise not_found("clustering", f"no clustering {clustering_id}")
        return Clustering(**run)
