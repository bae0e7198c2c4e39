"""CIFAR-FS's class split (Bertinetto et al. 2019): 64 / 16 / 20 CIFAR-100 classes, checked against the published files.

The expected val/test lists are those of the split files torchmeta ships for CIFAR-FS
(``torchmeta/datasets/assets/cifar100/cifar-fs/{val,test}.json``), written out here independently.
"""
from robustlab.core.data.fewshot_images import CIFAR100_CLASSES, CIFAR_FS_TEST, CIFAR_FS_VAL

PUBLISHED_TEST = {"whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe", "leopard", "plain",
                  "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman", "bicycle", "pickup_truck", "rocket"}
PUBLISHED_VAL = {"beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly", "sea", "camel",
                 "cattle", "crab", "crocodile", "maple_tree", "motorcycle", "tractor"}


def test_split_matches_the_published_files():
    assert set(CIFAR_FS_TEST) == PUBLISHED_TEST and set(CIFAR_FS_VAL) == PUBLISHED_VAL


def test_counts_disjointness_and_names():
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100
    assert len(CIFAR_FS_VAL) == len(set(CIFAR_FS_VAL)) == 16 and len(CIFAR_FS_TEST) == len(set(CIFAR_FS_TEST)) == 20
    assert not set(CIFAR_FS_VAL) & set(CIFAR_FS_TEST) and set(CIFAR_FS_VAL) | set(CIFAR_FS_TEST) <= set(CIFAR100_CLASSES)
    train = set(CIFAR100_CLASSES) - set(CIFAR_FS_VAL) - set(CIFAR_FS_TEST)
    assert len(train) == 64 and {"dolphin", "lawn_mower", "willow_tree", "aquarium_fish"} <= train
