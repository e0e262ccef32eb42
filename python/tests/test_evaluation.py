# SPDX-License-Identifier: MIT
"""Evaluation (verification, episodes, official runs, ROC) and the gallery."""
import numpy as np
import pytest

import siamese


def test_verification(trained, dataset):
    m, _ = trained
    r = siamese.verification_accuracy(m, dataset, 60, seed=3)
    assert r.kind == "verification" and r.description == "random-pair verification"
    assert r.trials == 60 and r.n_way == 2 and r.chance == 0.5
    assert r.accuracy == pytest.approx(r.correct / 60)
    scores, labels = siamese.verification_scores(m, dataset, 60, seed=3)
    right = np.sum((scores >= 0.5) == (labels == 1))
    assert right == r.correct
    at = siamese.verification_accuracy(m, dataset, 60, seed=3, threshold=0.0)
    assert at.correct == np.sum(labels == 1)
    # the pairs are the sampler's: the first 60 of Sampler(dataset, 3)
    p = siamese.Sampler(dataset, 3).next(60)
    assert np.array_equal(p.labels, labels)
    assert np.array_equal(m.predict_pairs(p.left, p.right), scores)
    logits, l2 = siamese.verification_logits(m, dataset, 60, seed=3)
    assert np.array_equal(l2, labels)
    assert np.array_equal(m.logits(p.left, p.right), logits)


def test_roc():
    scores = np.array([0.1, 0.4, 0.35, 0.8], np.float32)
    labels = np.array([0, 0, 1, 1], np.float32)
    with siamese.Roc(scores, labels) as roc:
        assert len(roc) == 5
        t, far, frr = roc.points()
        assert np.isinf(t[-1]) and far[-1] == 0 and frr[-1] == 1
        assert roc.point(0) == (t[0], far[0], frr[0])
        eer, thr = roc.eer()
        assert eer == 0.5 and thr == pytest.approx(0.4)  # FAR = FRR = 0.5 there
        t1, f1, r1 = roc.threshold_at_far(0.0)
        assert f1 == 0 and t1 == pytest.approx(0.8)
    with pytest.raises(siamese.InvalidArgumentError, match="SM_ERR_INVALID_ARG"):
        siamese.Roc(scores, np.zeros(4, np.float32))


def test_episodes(trained, dataset):
    m, _ = trained
    r = siamese.oneshot_episodes(m, dataset, n_way=5, k_shot=1, n_episodes=10, seed=2)
    assert r.kind == "episodes_within" and r.trials == 50 and r.chance == pytest.approx(0.2)
    b = siamese.oneshot_episodes(m, dataset, 5, 2, 4, within_alphabet=False, seed=2)
    assert b.kind == "episodes_between" and b.k_shot == 2
    with pytest.raises(siamese.DatasetError, match="SM_ERR_DATASET"):
        siamese.oneshot_episodes(m, dataset, n_way=11, n_episodes=1)  # 10 per alphabet


def test_oneshot_runs(trained, runs_tree):
    m, _ = trained
    with siamese.OneshotRuns(runs_tree, 16, 16) as runs:
        assert len(runs) == 2 and runs.num_trials == 10
        assert runs.info(0) == ("run01", 5, 5)
        img, answer = runs.image(0, 0, query=True)
        assert img.shape == (16, 16) and answer == 2
        cand, none = runs.image(0, 2)
        assert none is None
        r = runs.evaluate(m)
        assert r.kind == "oneshot_runs" and r.trials == 10 and r.n_way == 5
    with siamese.OneshotRuns(runs_tree, 8, 8, resize=True) as small:
        assert small.image(1, 0)[0].shape == (8, 8)
    with pytest.raises(siamese.ShapeError):
        siamese.OneshotRuns(runs_tree, 20, 20)


def test_gallery(trained, dataset, png_tree, tmp_path):
    m, _ = trained
    g = siamese.Gallery(m)
    assert len(g) == 0 and g.num_examples == 0
    with pytest.raises(siamese.StateError, match="SM_ERR_STATE"):
        g.identify(dataset[0])
    for c in range(5):
        g.enrol(f"A/c{c}", dataset.images(range(4 * c, 4 * c + 2)))
    g.enrol("A/c0", dataset[2])  # one more example, one image
    assert len(g) == 5 and g.num_examples == 11
    assert g.labels == [f"A/c{c}" for c in range(5)]
    assert g.label_examples(0) == 3 and g.find_label("A/c3") == 3
    assert g.find_label("nope") is None and "A/c1" in g
    assert g.bytes_per_example > 0
    top = g.identify(dataset.images([3, 7]), k=3)
    assert len(top) == 2 and len(top[0]) == 3
    assert top[0][0].rank == 1 and top[0][0].score >= top[0][1].score
    assert top[0][0].label == g.labels[top[0][0].index]
    single = g.identify(dataset[3], k=10)
    assert len(single) == 1 and len(single[0]) == 5  # min(k, labels)
    emb = m.embed(dataset.images([3, 7]))
    assert g.identify_embeddings(emb, k=3) == top
    score, accept = g.verify("A/c0", dataset[3], threshold=0.0)
    assert accept and 0 <= score <= 1
    assert g.verify("A/c0", dataset[3], threshold=1.0)[1] is (score >= 1.0)
    with pytest.raises(siamese.InvalidArgumentError):
        g.verify("not enrolled", dataset[3])
    g.enrol_embeddings("B/e", emb)
    assert g.label_examples(g.find_label("B/e")) == 2
    assert g.remove("B/e") == 2 and g.remove("B/e") == 0
    path = tmp_path / "g.gallery"
    g.save(path)
    with siamese.Gallery.load(m, path) as g2:
        assert g2.labels == g.labels and g2.identify(dataset[3], 3) == g.identify(dataset[3], 3)
    assert g.enrol_path(png_tree) == 36
    assert "Alpha1/character06" in g
    with pytest.raises(siamese.InvalidArgumentError):
        g.enrol("bad", np.full((16, 16), 2.0, np.float32))
    other = siamese.Model.create(m.backend, str(m.arch), seed=99)
    with pytest.raises(siamese.ShapeError, match="SM_ERR_SHAPE"):
        siamese.Gallery.load(other, path)


def test_gallery_storage_and_mapping(trained, dataset, tmp_path):
    """Reduced storage types, mapped files and the load options (0.5)."""
    m, _ = trained
    with siamese.Gallery(m) as g:
        assert g.storage == "f32" and not g.is_mapped
        for c in range(4):
            g.enrol(f"c{c}", dataset.images(range(4 * c, 4 * c + 3)))
        exact = g.identify(dataset.images([1, 5]), k=4)
        path = tmp_path / "f32.gallery"
        g.save(path)
    with siamese.Gallery.load(m, path) as mapped:
        assert mapped.is_mapped == (m.backend.name != "cuda")
        assert mapped.identify(dataset.images([1, 5]), k=4) == exact
    with siamese.Gallery.load(m, path, no_map=True) as copied:
        assert not copied.is_mapped
        assert copied.identify(dataset.images([1, 5]), k=4) == exact
    with siamese.Gallery.load(m, path, skip_row_check=True) as lazy:
        assert lazy.identify(dataset.images([1, 5]), k=4) == exact
    for storage in ("bf16", "f16", "u8"):
        with siamese.Gallery(m, storage=storage) as r:
            assert r.storage == storage
            for c in range(4):
                r.enrol(f"c{c}", dataset.images(range(4 * c, 4 * c + 3)))
            top = r.identify(dataset.images([1, 5]), k=4)
            for got, want in zip(top, exact):  # within the type's rounding of the exact scores
                assert [x.label for x in got][:1] == [x.label for x in want][:1]
                assert abs(got[0].score - want[0].score) < 0.02
            p = tmp_path / f"{storage}.gallery"
            r.save(p)
            with siamese.Gallery.load(m, p) as back:
                assert back.storage == storage and back.identify(dataset.images([1, 5]), 4) == top
    with pytest.raises(siamese.InvalidArgumentError):
        siamese.Gallery(m, storage="f64")


def test_gallery_index(trained, dataset):
    """The candidate index (0.5): the same matches as the exact search on a small gallery."""
    m, _ = trained
    if not siamese.index_available():
        pytest.skip("SKIP: the index-faiss module is not built here (Debian libfaiss-dev)")
    with siamese.Gallery(m) as g:
        for c in range(6):
            g.enrol(f"c{c}", dataset.images(range(4 * c, 4 * c + 3)))
        queries = m.embed(dataset.images([1, 5, 9, 13]))
        exact = g.identify_embeddings(queries, k=3)
        for kind in ("hnsw", "ivf"):
            try:
                ix = (siamese.GalleryIndex(g, kind, ivf_lists=2, effort=2) if kind == "ivf"
                      else siamese.GalleryIndex(g, kind))
            except siamese.UnsupportedError:
                pytest.skip("SKIP: this head has no negative weight")
            with ix:
                assert ix.info["kind"] == kind and ix.info["examples"] == 18
                assert ix.identify_embeddings(queries, k=3) == exact
                assert ix.identify(dataset.images([1, 5, 9, 13]), k=3) == exact
                ix.set_search(candidates=8)
                assert ix.info["candidates"] == 8
        g.enrol("c6", dataset.images([30]))
        with siamese.GalleryIndex(g) as ix:
            g.enrol("c7", dataset.images([31]))
            with pytest.raises(siamese.StateError, match="SM_ERR_STATE"):
                ix.identify_embeddings(queries)
        with pytest.raises(siamese.InvalidArgumentError):
            siamese.GalleryIndex(g, "lsh")
