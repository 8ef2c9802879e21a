"""REST: feedback on an answer (scope ``feedback`` or ``chat``; own conversations only)."""

from __future__ import annotations

from litestar import Controller, post
from litestar.status_codes import HTTP_201_CREATED

from app.auth.guards import feedback_guard
from app.auth.ownership import owned_message
from app.auth.principal import Principal
from app.chat.safety_gate import SafetyGate
from app.entrypoints.rest.feedback.schemas import FeedbackIn, FeedbackOut
from conversation import ConversationService, FeedbackService


class FeedbackController(Controller):
    path = "/v1/messages"
    tags = ["feedback"]
    guards = [feedback_guard]

    @post("/{message_id:str}/feedback", status_code=HTTP_201_CREATED)
    async def add(
        self,
        feedback: FeedbackService,
        conversations: ConversationService,
        safety: SafetyGate | None,
        principal: Principal,
        message_id: str,
        data: FeedbackIn,
    ) -> FeedbackOut:
        """Rate an assistant message: 1 (good) or -1 (bad), with an optional comment.

        Only on a message of a conversation the caller may see (a 404 otherwise).
        """
        message = await owned_message(conversations, principal, message_id)
        info = await feedback.add(principal.tenant_id, message_id, data.rating, data.comment)
        if data.rating < 0 and safety is not None:
            await safety.queue_feedback(
                principal.tenant_id, message.conversation_id, message_id, data.comment
            )
        return FeedbackOut.of(info)
