"""Top words per topic (TopicWords), and `vae-lab train experiment=figurnov2018/lda_20news` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vae_lab.model.priors import DirichletPrior
from vae_lab.model.topics import TopicDecoder
from vae_lab.probes.topics import TopicWords


class TinyTopicModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.decoder = TopicDecoder(3, 6)
        self.prior = DirichletPrior(3, alpha=0.5, learnable=True, min_alpha=0.1)
        with torch.no_grad():
            # topic k puts its mass on words 2k (most) and 2k + 1 (next)
            logits = torch.full((3, 6), -5.0)
            for k in range(3):
                logits[k, 2 * k], logits[k, 2 * k + 1] = 3.0, 1.0
            self.decoder.topics.copy_(logits)
            self.prior.raw_alpha.copy_(torch.tensor([0.0, 2.0, 1.0]))  # alpha order: topic 1, 2, 0


def test_topic_lines_list_the_top_words_by_decreasing_prior_concentration():
    vocab = ["a0", "a1", "b0", "b1", "c0", "c1"]
    lines = TopicWords(n_words=2).topic_lines(TinyTopicModel(), vocab)
    assert [line.split()[0] for line in lines] == ["1", "2", "0"]
    assert [line.split()[-2:] for line in lines] == [["b0", "b1"], ["c0", "c1"], ["a0", "a1"]]
    alpha = torch.nn.functional.softplus(torch.tensor(2.0)).item()
    assert f"alpha={alpha:.3f}" in lines[0]
    # without a vocabulary, word ids
    assert TopicWords(n_words=1).topic_lines(TinyTopicModel(), None)[0].split()[-1] == "2"


def test_topic_words_ignores_a_model_without_topics():
    class NoTopics(pl.LightningModule):
        decoder = torch.nn.Linear(2, 2)

    assert TopicWords().topic_lines(NoTopics(), None) is None


def test_lda_20news_preset_runs_end_to_end_with_perplexity_and_topics(cli, shared_data_dir):
    proc = cli(
        "train",
        "experiment=figurnov2018/lda_20news",
        "+debug=fast",
        env={"VAE_LAB_DATA_DIR": str(shared_data_dir)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in Path(cli.cwd).glob("outputs/*/*/summary.json")]
    assert len(runs) == 1, runs
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    frame = pd.read_csv(run / "metrics.csv")
    for column in ("val/perplexity", "test/perplexity"):
        values = frame[column].dropna()
        # a barely trained model is close to uniform over the 1,995 words; the ELBO bound is above it
        assert len(values) == 1 and math.isfinite(values.iloc[0]) and 1000 < values.iloc[0] < 4000, column
    assert summary["metrics"]["test/perplexity"] == frame["test/perplexity"].dropna().iloc[0]

    lines = (run / "topics.txt").read_text().splitlines()
    assert lines[0].startswith("# top 10 words per topic; tested model")
    vocab_file = shared_data_dir / "20news" / "vocab.new"
    vocab = {ln.split()[0] for ln in vocab_file.read_text().splitlines() if ln}
    topics = lines[1:]
    assert len(topics) == 50
    for line in topics:
        index, alpha, *words = line.split()
        assert alpha.startswith("alpha=") and len(words) == 10 and set(words) <= vocab, line
    assert sorted(int(line.split()[0]) for line in topics) == list(range(50))

    text_tags = set()
    for path in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        text_tags |= {tag for tag in acc.Tags()["tensors"] if tag.startswith("topics")}
    assert text_tags, "no TensorBoard text summary for the topics"
