"""REST: feedback on an answer."""

from __future__ import annotations

from litestar import Controller, post
from litestar.status_codes import HTTP_201_CREATED

from app.auth import Principal
from app.schemas.feedback import FeedbackIn, FeedbackOut
from app.services import Services


class FeedbackController(Controller):
    path = "/v1/messages"
    tags = ["feedback"]

    @post("/{message_id:str}/feedback", status_code=HTTP_201_CREATED)
    async def add(
        self, services: Services, principal: Principal, message_id: str, data: FeedbackIn
    ) -> FeedbackOut:
        """Rate an assistant message: 1 (good) or -1 (bad), with an optional comment."""
        info = await services.feedback.add(
            principal.tenant_id, message_id, data.rating, data.comment
        )
        if data.rating < 0 and services.safety is not None:
            message = await services.conversations.get_message(principal.tenant_id, message_id)
            await services.safety.queue_feedback(
                principal.tenant_id, message.conversation_id, message_id, data.comment
            )
        return FeedbackOut.of(info)
