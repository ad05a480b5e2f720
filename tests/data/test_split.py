"""growkit's stratified split and digits reader against scikit-learn's own (the reference they replace at
start-up): the same indices, in the same order, over sizes, class balances, fractions and seeds."""
import numpy as np
import pytest

from growkit.data.split import load_digits_arrays, stratified_split

sk_split = pytest.importorskip("sklearn.model_selection").train_test_split


def labels(n, k, skew, seed):
    """``n`` labels of ``k`` classes, each class at least twice; ``skew`` > 0 makes them unequal."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 1.0 / skew)) if skew else np.full(k, 1.0 / k)
    y = np.concatenate([np.repeat(np.arange(k), 2), rng.choice(k, n - 2 * k, p=p)])
    return rng.permutation(y)


CASES = [(n, k, skew) for n in (30, 97, 360, 1437) for k in (2, 3, 10) for skew in (0, 1, 3) if n >= 6 * k]


@pytest.mark.parametrize("n,k,skew", CASES)
def test_the_same_split_as_scikit_learn(n, k, skew):
    y = labels(n, k, skew, seed=n + k + skew)
    idx = np.arange(n)
    for seed in (0, 1, 7, 123):
        for f in (0.1, 0.2, 1 / 3, 0.5):
            want = sk_split(idx, test_size=f, stratify=y, random_state=seed)
            try:
                got = stratified_split(y, test_size=f, seed=seed)
            except ValueError:
                pytest.fail(f"refused a split scikit-learn makes: n={n} k={k} test_size={f}")
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (n, k, skew, seed, f)
        for f in (0.25, 0.5, 0.75, 0.9):
            want = sk_split(idx, train_size=f, stratify=y, random_state=seed)
            got = stratified_split(y, train_size=f, seed=seed)
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (n, k, skew, seed, f)


@pytest.mark.parametrize("y,kw", [([0, 0, 1, 1, 1, 2], dict(test_size=0.5)),  # class 2 has one member
                                  ([0, 0, 1, 1, 2, 2] * 2, dict(test_size=0.1)),  # 2 test images, 3 classes
                                  ([0, 0, 1, 1, 2, 2] * 2, dict(train_size=0.1))])
def test_refuses_what_scikit_learn_refuses(y, kw):
    with pytest.raises(ValueError):
        sk_split(np.arange(len(y)), stratify=y, random_state=0, **kw)
    with pytest.raises(ValueError):
        stratified_split(y, seed=0, **kw)


def test_the_digits_are_scikit_learns():
    from sklearn.datasets import load_digits
    images, target = load_digits_arrays()
    d = load_digits()
    assert np.array_equal(images, d.images) and np.array_equal(target, d.target)
