"""marshmallow schemas for the Questions & Answers service's query parameters and bodies."""
from atelier_common.validation import ContractSchema, Email, Id, PageSchema, PhotoUrls, Text


class QuestionListQuery(PageSchema):
    """GET /qa/questions: product_id, page, count."""
    product_id = Id(required=True)


class QuestionBody(ContractSchema):
    """POST /qa/questions (limits from the front-end's own form rules)."""
    body = Text(1, 1000, required=True)
    name = Text(1, 60, required=True)
    email = Email(required=True)
    product_id = Id(required=True)


class AnswerBody(ContractSchema):
    """POST /qa/questions/:question_id/answers; photos optional, at most 5 http(s) URLs."""
    body = Text(1, 1000, required=True)
    name = Text(1, 60, required=True)
    email = Email(required=True)
    photos = PhotoUrls(5)


# Schemas hold no per-request state: one instance each serves every request.
question_list_query = QuestionListQuery()
answer_list_query = PageSchema()
question_body = QuestionBody()
answer_body = AnswerBody()
