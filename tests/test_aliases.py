from kvcalc.sources.aliases import aliases_line
from kvcalc.sources.profiles import find_profile


def test_flow_list_is_read_without_yaml() -> None:
    assert aliases_line("name: x\naliases: [h100, H100-SXM5, 3090]  # note\nvendor: y") == ["h100", "h100-sxm5", "3090"]
    assert aliases_line("aliases: []") == []
    assert aliases_line("name: x") == []


def test_other_forms_fall_back_to_yaml() -> None:
    assert aliases_line("aliases:\n  - a\n") is None
    assert aliases_line('aliases: ["a", b]') is None


def test_profile_aliases_resolve() -> None:
    path = find_profile("LLAMA-70B")
    assert path is not None and path.stem == "llama-3.1-70b"
