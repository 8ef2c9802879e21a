"""REST: feedback on an answer and reports of one (scope ``feedback`` or ``chat``; own
conversations only). A thumbs-down or a report opens a labeling task, whether or not
the safety filters run."""

from __future__ import annotations

from litestar import Controller, post
from litestar.status_codes import HTTP_201_CREATED

from app.auth.guards import feedback_guard
from app.auth.ownership import owned_message
from app.auth.principal import Principal
from app.core.errors import ResourceNotFoundError
from app.entrypoints.rest.feedback.schemas import FeedbackIn, FeedbackOut, ReportIn, ReportOut
from app.labeling.intake import queue_report, queue_thumbs_down
from conversation import ConversationService, FeedbackService, LabelingQueue


class FeedbackController(Controller):
    path = "/v1/messages"
    tags = ["feedback"]
    guards = [feedback_guard]

    @post("/{message_id:str}/feedback", status_code=HTTP_201_CREATED)
    async def add(
        self,
        feedback: FeedbackService,
        conversations: ConversationService,
        labeling: LabelingQueue,
        principal: Principal,
        message_id: str,
        data: FeedbackIn,
    ) -> FeedbackOut:
        """Rate an assistant message: 1 (good) or -1 (bad), with an optional comment.

        Only on a message of a conversation the caller may see (a 404 otherwise). A
        thumbs-down queues the answer for labelers (``user_feedback``).
        """
        message = await owned_message(conversations, principal, message_id)
        info = await feedback.add(principal.tenant_id, message_id, data.rating, data.comment)
        if data.rating < 0:
            await queue_thumbs_down(labeling, message, data.comment)
        return FeedbackOut.of(info)

    @post("/{message_id:str}/report", status_code=HTTP_201_CREATED)
    async def report(
        self,
        conversations: ConversationService,
        labeling: LabelingQueue,
        principal: Principal,
        message_id: str,
        data: ReportIn,
    ) -> ReportOut:
        """Report an assistant message as inaccurate, unsafe, leaking personal data,
        citing the wrong source, off topic or other, with an optional comment.

        Only on a message of a conversation the caller may see (a 404 otherwise). The
        answer goes to the labelers' queue (``user_report``); reports of one answer
        while it waits there join one task.
        """
        message = await owned_message(conversations, principal, message_id)
        if message.role != "assistant":
            raise ResourceNotFoundError("message not found")
        await queue_report(labeling, message, data.reason, data.comment)
        return ReportOut(message_id=message.id, reason=data.reason, comment=data.comment)
