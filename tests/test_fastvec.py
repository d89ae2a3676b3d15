import numpy as np
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
