"""The AVMIT paper's published results (facts.md), in one place, to set ours against."""
from __future__ import annotations

#: Table 5: trainable parameters of the six recognition models, by (embeddings, rnn).
TABLE5_TRAINABLE_PARAMS = {
    ("yamnet_effnetb0", "frnn"): 675_472, ("yamnet_effnetb0", "gru"): 248_976,
    ("yamnet_effnetb0", "lstm"): 740_112, ("vggish_vgg16", "frnn"): 366_352,
    ("vggish_vgg16", "gru"): 413_968, ("vggish_vgg16", "lstm"): 956_944,
}

#: Table 6: test loss, top-1 %, top-5 % by (train_set, embeddings, rnn).
TABLE6 = {
    ("avmit", "yamnet_effnetb0", "frnn"): (0.1841, 94.58, 99.90),
    ("mit16", "yamnet_effnetb0", "frnn"): (0.2973, 89.79, 99.90),
    ("avmit", "yamnet_effnetb0", "gru"): (0.1600, 95.73, 99.90),
    ("mit16", "yamnet_effnetb0", "gru"): (0.2430, 92.29, 99.90),
    ("avmit", "yamnet_effnetb0", "lstm"): (0.1674, 95.52, 99.79),
    ("mit16", "yamnet_effnetb0", "lstm"): (0.2366, 92.81, 100.0),
    ("avmit", "vggish_vgg16", "frnn"): (0.2980, 90.73, 99.79),
    ("mit16", "vggish_vgg16", "frnn"): (0.4388, 84.79, 99.58),
    ("avmit", "vggish_vgg16", "gru"): (0.2917, 91.04, 99.79),
    ("mit16", "vggish_vgg16", "gru"): (0.4108, 85.83, 99.69),
    ("avmit", "vggish_vgg16", "lstm"): (0.2892, 90.94, 99.90),
    ("mit16", "vggish_vgg16", "lstm"): (0.3527, 86.98, 99.90),
}

#: Table 7: SAVC test loss and accuracy % by (train_set, embeddings, rnn).
TABLE7 = {
    ("avmit", "yamnet_effnetb0", "frnn"): (0.4223, 81.30),
    ("mit16", "yamnet_effnetb0", "frnn"): (0.5371, 73.33),
    ("avmit", "yamnet_effnetb0", "gru"): (0.3971, 81.82),
    ("mit16", "yamnet_effnetb0", "gru"): (0.5124, 75.47),
    ("avmit", "yamnet_effnetb0", "lstm"): (0.4006, 82.24),
    ("mit16", "yamnet_effnetb0", "lstm"): (0.5143, 74.17),
    ("avmit", "vggish_vgg16", "frnn"): (0.5352, 73.18),
    ("mit16", "vggish_vgg16", "frnn"): (0.5695, 71.09),
    ("avmit", "vggish_vgg16", "gru"): (0.5289, 72.92),
    ("mit16", "vggish_vgg16", "gru"): (0.6921, 67.19),
    ("avmit", "vggish_vgg16", "lstm"): (0.4671, 77.55),
    ("mit16", "vggish_vgg16", "lstm"): (0.7877, 58.39),
}
