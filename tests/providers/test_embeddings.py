"""Embeddings translation for Vertex AI (``:predict``) and Bedrock (InvokeModel: Titan, Cohere),
against request/response shapes from the providers' API references."""

from __future__ import annotations

import orjson
import pytest
from openai.types import CreateEmbeddingResponse

from crossroads.errors import UnsupportedFeature
from crossroads.providers.base import Credentials
from providers.sdk_view import AWS, SA, adapter

VERTEX_PREDICT = {"predictions": [
    {"embeddings": {"statistics": {"truncated": False, "token_count": 4},
                    "values": [0.01, -0.02, 0.03]}},
    {"embeddings": {"statistics": {"truncated": False, "token_count": 6},
                    "values": [0.04, 0.05, -0.06]}}],
    "metadata": {"billableCharacterCount": 20}}


def test_vertex_predict_request_and_response() -> None:
    v = adapter("google-vertex-ai")
    creds = Credentials(orjson.dumps(SA).decode(), {"access_token": "ya29.tok"})
    req = v.embeddings_request({"model": "x", "input": ["first", "second"], "dimensions": 3},
                               "text-embedding-005", creds, "https://vertex.test")
    assert req.url == (f"https://vertex.test/v1/projects/{SA['project_id']}/locations/"
                       f"{SA['region']}/publishers/google/models/text-embedding-005:predict")
    assert req.headers["authorization"] == "Bearer ya29.tok"
    assert orjson.loads(req.body) == {"instances": [{"content": "first"}, {"content": "second"}],
                                      "parameters": {"outputDimensionality": 3}}
    parsed = v.embeddings_response(orjson.dumps(VERTEX_PREDICT), "text-embedding-005")
    out = CreateEmbeddingResponse.model_validate(orjson.loads(parsed.body))
    assert [d.embedding for d in out.data] == [[0.01, -0.02, 0.03], [0.04, 0.05, -0.06]]
    assert out.usage.prompt_tokens == 10 and parsed.usage.prompt_tokens == 10


def bedrock_creds() -> Credentials:
    return Credentials(orjson.dumps(AWS).decode(), {"now": 1_700_000_000.0})


def test_bedrock_titan_embeddings_signed_request_and_response() -> None:
    b = adapter("aws-bedrock")
    req = b.embeddings_request({"input": "hello world", "dimensions": 256},
                               "amazon.titan-embed-text-v2:0", bedrock_creds(),
                               "https://bedrock-runtime.{region}.amazonaws.com")
    assert req.url.endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert orjson.loads(req.body) == {"inputText": "hello world", "dimensions": 256}
    parsed = b.embeddings_response(
        orjson.dumps({"embedding": [0.1, 0.2], "inputTextTokenCount": 3}),
        "amazon.titan-embed-text-v2:0")
    out = CreateEmbeddingResponse.model_validate(orjson.loads(parsed.body))
    assert out.data[0].embedding == [0.1, 0.2] and out.usage.prompt_tokens == 3


def test_bedrock_cohere_embeddings_batch() -> None:
    b = adapter("aws-bedrock")
    req = b.embeddings_request({"input": ["a", "b"]}, "cohere.embed-english-v3",
                               bedrock_creds(), "https://bedrock-runtime.{region}.amazonaws.com")
    assert orjson.loads(req.body) == {"texts": ["a", "b"], "input_type": "search_document"}
    parsed = b.embeddings_response(orjson.dumps({
        "id": "e1", "texts": ["a", "b"], "embeddings": [[1.0], [2.0]],
        "response_type": "embeddings_floats"}), "cohere.embed-english-v3")
    assert [d["embedding"] for d in orjson.loads(parsed.body)["data"]] == [[1.0], [2.0]]


@pytest.mark.parametrize("body,model,needle", [
    ({"input": ["a", "b"]}, "amazon.titan-embed-text-v2:0", "one text"),
    ({"input": "a"}, "meta.llama3-8b", "embeddings for"),
    ({"input": [[1, 2]]}, "cohere.embed-english-v3", "only strings"),
    ({"input": "a", "encoding_format": "base64"}, "cohere.embed-english-v3", "only float"),
])
def test_bedrock_embeddings_refuse_what_they_cannot_do(body: dict, model: str,
                                                       needle: str) -> None:
    with pytest.raises(UnsupportedFeature) as ei:
        adapter("aws-bedrock").embeddings_request(body, model, bedrock_creds(),
                                                  "https://b.test")
    assert needle in ei.value.message and "aws-bedrock" in ei.value.message
