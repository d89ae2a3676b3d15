from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.fastvec import CompiledTfidf, dense_columns, softmax

CORPUS = ["刷脸失败怎么办", "要带户口本吗", "怎么认证", "替我妈认证", "认证失败了咋整", "今天天气"]
LABELS = ["fail", "materials", "how", "family", "fail", "oos"]


def test_compiled_vector_equals_sklearn() -> None:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    vectorizer.fit(CORPUS)
    compiled = CompiledTfidf(vectorizer)
    for text in ["刷脸老是失败", "户口本户口本", "zzz", "认证"]:
        expected = vectorizer.transform([text]).toarray()[0]
        indices, weights = compiled.vector(text)
        got = np.zeros_like(expected)
        got[indices] = weights
        assert np.allclose(got, expected)


def test_fast_scores_equal_predict_proba() -> None:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    features = vectorizer.fit_transform(CORPUS)
    model = LogisticRegression(C=10, max_iter=1000).fit(features, LABELS)
    compiled = CompiledTfidf(vectorizer)
    coef = dense_columns(model.coef_)
    for text in ["刷脸不过", "带什么", "替我爸认证"]:
        indices, weights = compiled.vector(text)
        fast = softmax(coef[:, indices] @ weights + model.intercept_)
        assert np.allclose(fast, model.predict_proba(vectorizer.transform([text]))[0])


def reference_vector(compiled: CompiledTfidf, text: str) -> tuple[np.ndarray, np.ndarray]:
    """CompiledTfidf.vector as first written (Counter, then every step on every term)."""
    counts = Counter(term for term in compiled.analyzer(text) if term in compiled.vocabulary)
    if not counts:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    indices = np.fromiter((compiled.vocabulary[t] for t in counts), dtype=np.intp, count=len(counts))
    weights = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    if compiled.sublinear:
        weights = 1.0 + np.log(weights)
    if compiled.use_idf:
        weights = weights * compiled.idf[indices]
    if compiled.norm == "l2":
        length = float(np.sqrt(np.dot(weights, weights)))
        if length > 0:
            weights = weights / length
    return indices, weights


VARIANTS = [
    CompiledTfidf(TfidfVectorizer(analyzer=analyzer, ngram_range=(1, 3), sublinear_tf=sublinear,
                                  norm=norm).fit(CORPUS))
    for analyzer in ("char", "char_wb") for sublinear in (True, False) for norm in ("l2", None)
]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set("".join(CORPUS)) | set("啊 x"))), max_size=24))
def test_vector_is_bit_for_bit_the_plain_computation(text: str) -> None:
    """Same indices in the same order and the same float64 bits: scores downstream are identical."""
    for compiled in VARIANTS:
        indices, weights = compiled.vector(text)
        expected_indices, expected_weights = reference_vector(compiled, text)
        assert indices.tobytes() == expected_indices.tobytes()
        assert weights.tobytes() == expected_weights.tobytes()
