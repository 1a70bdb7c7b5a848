"""GET /qa/questions and GET /qa/questions/:id/answers: shapes, exact values, orders, paging,
reported rows hidden. Every test writes its own rows under a product id of its own."""
import pytest


@pytest.fixture
def catalogue(db):
    """One product with questions in a known order, answers and photos; some reported."""
    product = db.fresh_product_id()
    q_top = db.add_question(product, body="Top?", helpful=9, date="2019-03-04T05:06:07.089Z",
                            name="topasker")
    q_tie_first = db.add_question(product, body="Tie one", helpful=4)
    q_hidden = db.add_question(product, body="Reported", helpful=50, reported=True)
    q_tie_second = db.add_question(product, body="Tie two", helpful=4)
    a_low = db.add_answer(q_top, body="Low", helpful=1, date="2018-08-18T09:12:00.000Z", name="Seller",
                          photos=["https://img.example/2.jpg", "https://img.example/1.jpg"])
    a_hidden = db.add_answer(q_top, body="Reported answer", helpful=99, reported=True,
                             photos=["https://img.example/hidden.jpg"])
    a_high = db.add_answer(q_top, body="High", helpful=7)
    a_of_hidden_question = db.add_answer(q_hidden, body="Under a reported question", helpful=3)
    return dict(product=product, q_top=q_top, q_tie_first=q_tie_first, q_hidden=q_hidden,
                q_tie_second=q_tie_second, a_low=a_low, a_hidden=a_hidden, a_high=a_high,
                a_of_hidden_question=a_of_hidden_question)


def test_questions_of_a_product_exact_values_and_order(client, db, catalogue):
    c = catalogue
    low_photos = db.photo_ids(c["a_low"])
    response = client.get(f"/qa/questions?product_id={c['product']}&count=10")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "product_id": str(c["product"]),
        "results": [
            {"question_id": c["q_top"], "question_body": "Top?", "question_date": "2019-03-04T05:06:07.089Z",
             "asker_name": "topasker", "question_helpfulness": 9, "reported": False,
             "answers": {
                 str(c["a_low"]): {"id": c["a_low"], "body": "Low", "date": "2018-08-18T09:12:00.000Z",
                                   "answerer_name": "Seller", "helpfulness": 1,
                                   # photo-id order, not URL order
                                   "photos": ["https://img.example/2.jpg", "https://img.example/1.jpg"]},
                 str(c["a_high"]): {"id": c["a_high"], "body": "High", "date": "2021-01-02T03:04:05.006Z",
                                    "answerer_name": "answerer", "helpfulness": 7, "photos": []},
             }},
            {"question_id": c["q_tie_first"], "question_body": "Tie one", "question_date": "2020-07-27T21:18:34.409Z",
             "asker_name": "asker", "question_helpfulness": 4, "reported": False, "answers": {}},
            {"question_id": c["q_tie_second"], "question_body": "Tie two", "question_date": "2020-07-27T21:18:34.409Z",
             "asker_name": "asker", "question_helpfulness": 4, "reported": False, "answers": {}},
        ]}
    assert low_photos == sorted(low_photos) and len(low_photos) == 2


def test_questions_raw_key_order(client, db, catalogue):
    raw = client.get(f"/qa/questions?product_id={catalogue['product']}").data
    document = db.key_order(raw)
    assert [key for key, _ in document] == ["product_id", "results"]
    first = document[1][1][0]
    assert [key for key, _ in first] == ["question_id", "question_body", "question_date", "asker_name",
                                         "question_helpfulness", "reported", "answers"]
    answers = dict(first)["answers"]
    assert [key for key, _ in answers] == [str(catalogue["a_low"]), str(catalogue["a_high"])]
    assert [key for key, _ in answers[0][1]] == ["id", "body", "date", "answerer_name", "helpfulness", "photos"]


def test_questions_paging_and_defaults(client, db, catalogue):
    c = catalogue
    product = str(c["product"])
    default = client.get(f"/qa/questions?product_id={product}").get_json()
    assert [q["question_id"] for q in default["results"]] == [c["q_top"], c["q_tie_first"], c["q_tie_second"]]
    assert set(default) == {"product_id", "results"}  # no page/count keys
    pages = [client.get(f"/qa/questions?product_id={product}&page={page}&count=1").get_json()["results"]
             for page in (1, 2, 3, 4)]
    assert [[q["question_id"] for q in page] for page in pages] == [[c["q_top"]], [c["q_tie_first"]],
                                                                    [c["q_tie_second"]], []]
    # digit strings with leading zeros, a huge count (clamped) and unknown parameters are fine
    clamped = client.get(f"/qa/questions?product_id=0{product}&count=999999999&question_id=3").get_json()
    assert clamped == default


def test_questions_of_an_unknown_product_is_empty(client, db):
    product = db.fresh_product_id()
    response = client.get(f"/qa/questions?product_id={product}&page=2147483647&count=1000")
    assert response.status_code == 200
    assert response.get_json() == {"product_id": str(product), "results": []}


def test_product_with_only_reported_questions_is_empty(client, db):
    product = db.fresh_product_id()
    db.add_question(product, reported=True)
    assert client.get(f"/qa/questions?product_id={product}").get_json() == {"product_id": str(product),
                                                                             "results": []}


def test_answers_of_a_question_exact_values_order_and_paging(client, db, catalogue):
    c = catalogue
    low_photos = db.photo_ids(c["a_low"])
    response = client.get(f"/qa/questions/{c['q_top']}/answers")
    assert response.status_code == 200
    assert response.get_json() == {
        "question": str(c["q_top"]), "page": 1, "count": 5,
        "results": [
            {"answer_id": c["a_high"], "body": "High", "date": "2021-01-02T03:04:05.006Z",
             "answerer_name": "answerer", "helpfulness": 7, "photos": []},
            {"answer_id": c["a_low"], "body": "Low", "date": "2018-08-18T09:12:00.000Z",
             "answerer_name": "Seller", "helpfulness": 1,
             "photos": [{"id": low_photos[0], "url": "https://img.example/2.jpg"},
                        {"id": low_photos[1], "url": "https://img.example/1.jpg"}]},
        ]}
    document = db.key_order(response.data)
    assert [key for key, _ in document] == ["question", "page", "count", "results"]
    assert [key for key, _ in document[3][1][0]] == ["answer_id", "body", "date", "answerer_name",
                                                     "helpfulness", "photos"]
    assert [key for key, _ in document[3][1][1][5][1][0]] == ["id", "url"]

    second = client.get(f"/qa/questions/{c['q_top']}/answers?page=2&count=1").get_json()
    assert (second["page"], second["count"]) == (2, 1)
    assert [a["answer_id"] for a in second["results"]] == [c["a_low"]]
    clamped = client.get(f"/qa/questions/{c['q_top']}/answers?count=5000").get_json()
    assert clamped["count"] == 1000 and len(clamped["results"]) == 2
    beyond = client.get(f"/qa/questions/{c['q_top']}/answers?page=2147483647&count=1000").get_json()
    assert beyond == {"question": str(c["q_top"]), "page": 2147483647, "count": 1000, "results": []}


def test_answers_tie_break_by_answer_id(client, db):
    question = db.add_question(db.fresh_product_id())
    first = db.add_answer(question, helpful=2)
    second = db.add_answer(question, helpful=2)
    top = db.add_answer(question, helpful=3)
    results = client.get(f"/qa/questions/{question}/answers").get_json()["results"]
    assert [a["answer_id"] for a in results] == [top, first, second]


def test_answers_of_unknown_or_reported_question_are_empty(client, db, catalogue):
    unknown = db.value("SELECT coalesce(max(id), 0) + 1000 FROM question")
    for question in (unknown, catalogue["q_hidden"]):
        response = client.get(f"/qa/questions/{question}/answers")
        assert response.status_code == 200
        assert response.get_json() == {"question": str(question), "page": 1, "count": 5, "results": []}


def test_reported_rows_are_stored_but_never_shown(client, db, catalogue):
    c = catalogue
    assert db.value("SELECT count(*) FROM answer WHERE id = %s", (c["a_of_hidden_question"],)) == 1
    listed = client.get(f"/qa/questions?product_id={c['product']}&count=100").get_json()
    assert c["q_hidden"] not in [q["question_id"] for q in listed["results"]]
    nested = [answer_id for q in listed["results"] for answer_id in q["answers"]]
    assert str(c["a_hidden"]) not in nested
    answers = client.get(f"/qa/questions/{c['q_top']}/answers?count=100").get_json()["results"]
    assert c["a_hidden"] not in [a["answer_id"] for a in answers]
    assert "https://img.example/hidden.jpg" not in str(listed) + str(answers)
