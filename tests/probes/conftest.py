import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The probes' tiny networks run fastest on one thread (and the CI machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
