"""Text tests run torch on one thread: the models are tiny, and on a shared 2-core machine extra threads only wait."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
