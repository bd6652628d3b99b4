"""Drum kits as role -> one-shot samples with velocity layers (velocity in 0..1): parsed from
Hydrogen `drumkit.xml` files or assembled from Sonic Pi one-shots.

A *role* is what a drum plays in a pattern (`kick`, `snare`, `hat_closed`, ...); a kit may have
several candidate voices per role (e.g. 12 kicks) and a clip picks one of them.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from scripts.corpus.licenses import SONIC_PI_SAMPLES, SourceLicense, hydrogen_kit_license

HYDROGEN_KIT_DIRS = (
    Path("/usr/share/hydrogen/data/drumkits"),
    Path.home() / ".hydrogen/data/drumkits",
)
SONIC_PI_SAMPLE_DIR = Path("/usr/share/sonic-pi/samples")

# Caption wording of each role.
ROLE_NAMES: dict[str, str] = {
    "kick": "kick",
    "snare": "snare",
    "rim": "side stick",
    "clap": "clap",
    "hat_closed": "closed hi-hat",
    "hat_pedal": "pedal hi-hat",
    "hat_open": "open hi-hat",
    "ride": "ride",
    "ride_bell": "ride bell",
    "crash": "crash",
    "tom_high": "high tom",
    "tom_mid": "mid tom",
    "tom_low": "low tom",
    "cowbell": "cowbell",
    "shaker": "shaker",
    "tambourine": "tambourine",
    "conga_high": "high conga",
    "conga_low": "low conga",
    "clave": "claves",
}
ROLES = tuple(ROLE_NAMES)

# When a kit lacks a role, the pattern plays it on a stand-in (quieter by the gain factor).
ROLE_FALLBACKS: dict[str, tuple[tuple[str, float], ...]] = {
    "hat_pedal": (("hat_closed", 0.6),),
    "hat_open": (("hat_closed", 1.0),),
    "rim": (("snare", 0.45), ("clap", 0.5)),
    "clap": (("snare", 1.0),),
    "snare": (("clap", 1.0),),
    "ride": (("hat_closed", 0.9),),
    "ride_bell": (("ride", 1.0), ("cowbell", 0.5)),
    "tom_mid": (("tom_high", 1.0), ("tom_low", 1.0)),
    "tom_high": (("tom_mid", 1.0),),
    "tom_low": (("tom_mid", 1.0),),
    "conga_low": (("conga_high", 1.0),),
}

# Ordered: the first matching pattern decides (e.g. "cowbell" before "bell", "rimshot" out).
_NAME_TO_ROLE: tuple[tuple[str, str | None], ...] = (
    (r"sample:|choke|roll|zap|fx|whistle|agogo|djembe|sangban|dununba|kenkeni|rimshot", None),
    (r"cowbell", "cowbell"),
    (r"kick|bass ?drum|bassdrum|\bbd\b|cajon thump", "kick"),
    (r"side ?stick|rim ?click|\bstick\b|\brim\b", "rim"),
    (r"clap|snap", "clap"),
    (r"snare|cajon slap", "snare"),
    (r"h(i|igh)?[- ]?hat|\bhh|ohh|\bhat\b", "HAT"),
    (r"ride[- ]?(bell|cup)|^bell$|\bbell\b|cup", "ride_bell"),
    (r"ride", "ride"),
    (r"crash|splash|china|cymbal", "crash"),
    (r"floor|tom ?low|low ?tom|tom ?lo\b", "tom_low"),
    (r"tom ?(mid|2)|(mid|middle) ?tom|^tom$", "tom_mid"),
    (r"tom", "tom_high"),
    (r"shaker|maraca", "shaker"),
    (r"tambourine", "tambourine"),
    (r"(conga|bongo).*(lo|2)", "conga_low"),
    (r"conga|bongo", "conga_high"),
    (r"clave", "clave"),
)


def role_from_instrument_name(name: str) -> str | None:
    """Map a kit's instrument name to a pattern role, or None when it has no role.

    >>> role_from_instrument_name("Hi-Hat Open (Paiste Alpha Metal edge 14\\")")
    'hat_open'
    >>> role_from_instrument_name("c3 - bass drum 1")
    'kick'
    """
    lowered = name.lower().strip()
    # rumpf's names start with a note name ("c#3 - stick"): drop it.
    lowered = re.sub(r"^[a-g]#?\d\s*-\s*", "", lowered)
    for pattern, role in _NAME_TO_ROLE:
        if re.search(pattern, lowered):
            if role == "HAT":
                return _hat_role(lowered)
            return role
    return None


def _hat_role(lowered_name: str) -> str:
    if re.search(r"pedal|\bpd\b|foot", lowered_name):
        return "hat_pedal"
    if re.search(r"open|\bop\b|ohh|swish|semi", lowered_name):
        return "hat_open"
    return "hat_closed"


@dataclass(frozen=True)
class SampleLayer:
    """One sample of a voice, played for velocities in [min_velocity, max_velocity]."""

    path: str
    min_velocity: float = 0.0
    max_velocity: float = 1.0
    gain: float = 1.0


@dataclass(frozen=True)
class DrumVoice:
    """One instrument of a kit (e.g. 'Snare Jazz') with its velocity layers and volume."""

    name: str
    role: str
    layers: tuple[SampleLayer, ...]
    volume: float = 1.0

    def layers_for_velocity(self, velocity: float) -> tuple[SampleLayer, ...]:
        """Layers whose velocity range holds `velocity` (the nearest layer if none does)."""
        matching = tuple(
            layer for layer in self.layers if layer.min_velocity <= velocity <= layer.max_velocity
        )
        if matching:
            return matching
        nearest = min(
            self.layers,
            key=lambda layer: min(abs(velocity - layer.min_velocity),
                                  abs(velocity - layer.max_velocity)),
        )
        return (nearest,)


@dataclass(frozen=True)
class DrumKit:
    """A playable kit.

    Attributes:
        kit_id: stable id, e.g. `hydrogen:Audiophob` or `sonic-pi:808`.
        description: caption wording, e.g. "acoustic kit", "808 kit".
        style: `acoustic`, `electronic`, `808` or `percussion`; genres pick kits by style.
        voices: role -> candidate voices.
        license: licence of the samples.
    """

    kit_id: str
    description: str
    style: str
    voices: dict[str, tuple[DrumVoice, ...]] = field(hash=False)
    license: SourceLicense = field(hash=False)

    def has_role(self, role: str) -> bool:
        """Whether the kit has a voice of its own for `role` (no fallback)."""
        return bool(self.voices.get(role))

    def is_playable(self) -> bool:
        """A kit needs a kick, a backbeat (snare or clap) and a time keeper (hat or ride)."""
        return (
            self.has_role("kick")
            and (self.has_role("snare") or self.has_role("clap"))
            and (self.has_role("hat_closed") or self.has_role("ride") or self.has_role("shaker"))
        )

    def resolve_role(self, role: str) -> tuple[str, float] | None:
        """The role that actually plays `role` and a gain factor, or None if nothing can."""
        if self.has_role(role):
            return role, 1.0
        for stand_in, gain in ROLE_FALLBACKS.get(role, ()):
            if self.has_role(stand_in):
                return stand_in, gain
        return None


# Caption wording and style of each Hydrogen kit (the genre planner picks kits by style).
HYDROGEN_KIT_STYLES: dict[str, tuple[str, str]] = {
    "Audiophob": ("gritty electronic kit", "electronic"),
    "rumpf_kit_z01_h2": ("acoustic kit", "acoustic"),
    "ColomboAcousticDrumkit": ("acoustic kit with wooden toms", "acoustic"),
    "BJA_Pacific": ("acoustic kit", "acoustic"),
    "ElectricEmpireKit": ("electronic kit", "electronic"),
    "HardElectro1": ("hard electro kit", "electronic"),
    "VariBreaks": ("breakbeat kit", "electronic"),
    "Millo-Drums_v.1": ("acoustic kit", "acoustic"),
    "Millo_MultiLayered2": ("acoustic kit", "acoustic"),
    "Millo_MultiLayered3": ("acoustic kit", "acoustic"),
    "Gimme A Hand 1.0": ("hand percussion kit", "percussion"),
    "The Black Pearl 1.0": ("acoustic kit", "acoustic"),
    "ForzeeStereo": ("acoustic kit", "acoustic"),
    "GMRockKit": ("rock kit", "acoustic"),
    "TR808EmulationKit": ("808 kit", "808"),
}


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def _float_of(element: ET.Element, tag: str, default: float) -> float:
    child = element.find(tag)
    try:
        return float(child.text) if child is not None and child.text else default
    except ValueError:
        return default


def parse_hydrogen_kit(kit_dir: Path) -> DrumKit | None:
    """Read `kit_dir/drumkit.xml` into a DrumKit, or None when no instrument has a role.

    Handles both layouts: `<layer>` lists with velocity ranges (Hydrogen >= 0.9.4) and a
    single `<filename>` per instrument (older kits).
    """
    xml_path = kit_dir / "drumkit.xml"
    root = _strip_namespaces(ET.parse(xml_path).getroot())
    license_text = (root.findtext("license") or "").strip()
    author = (root.findtext("author") or "").strip()
    voices: dict[str, list[DrumVoice]] = {}
    for instrument in root.iter("instrument"):
        name = (instrument.findtext("name") or "").strip()
        role = role_from_instrument_name(name)
        if role is None or (instrument.findtext("isMuted") or "").strip() == "true":
            continue
        layers = []
        for layer in instrument.iter("layer"):
            layers.append(_sample_layer(kit_dir, layer))
        if not layers and instrument.findtext("filename"):
            layers.append(_sample_layer(kit_dir, instrument))
        layers = [layer for layer in layers if Path(layer.path).is_file()]
        if not layers:
            continue
        volume = _float_of(instrument, "volume", 1.0) * _float_of(instrument, "gain", 1.0)
        voices.setdefault(role, []).append(DrumVoice(name, role, tuple(layers), volume))
    if not voices:
        return None
    description, style = HYDROGEN_KIT_STYLES.get(kit_dir.name, ("drum kit", "acoustic"))
    return DrumKit(
        kit_id=f"hydrogen:{kit_dir.name}",
        description=description,
        style=style,
        voices={role: tuple(candidates) for role, candidates in voices.items()},
        license=hydrogen_kit_license(kit_dir.name, license_text, author),
    )


def _sample_layer(kit_dir: Path, element: ET.Element) -> SampleLayer:
    return SampleLayer(
        path=str(kit_dir / (element.findtext("filename") or "").strip()),
        min_velocity=_float_of(element, "min", 0.0),
        max_velocity=_float_of(element, "max", 1.0),
        gain=_float_of(element, "gain", 1.0),
    )


def find_hydrogen_kits(kit_dirs: tuple[Path, ...] = HYDROGEN_KIT_DIRS) -> list[DrumKit]:
    """All playable Hydrogen kits installed in `kit_dirs`, sorted by id (any licence)."""
    kits = []
    for base in kit_dirs:
        if not base.is_dir():
            continue
        for kit_dir in sorted(base.iterdir()):
            if (kit_dir / "drumkit.xml").is_file():
                kit = parse_hydrogen_kit(kit_dir)
                if kit is not None and kit.is_playable():
                    kits.append(kit)
    return sorted(kits, key=lambda kit: kit.kit_id)


# Sonic Pi one-shots grouped into kits. A role lists candidate voices; a voice is a list of
# (file stem, min velocity, max velocity) layers.
_SONIC_PI_KITS: dict[str, tuple[str, str, dict[str, list[list[tuple[str, float, float]]]]]] = {
    "acoustic": ("acoustic kit", "acoustic", {
        "kick": [[("drum_bass_soft", 0.0, 0.6), ("drum_bass_hard", 0.6, 1.0)],
                 [("drum_heavy_kick", 0.0, 1.0)]],
        "snare": [[("drum_snare_soft", 0.0, 0.6), ("drum_snare_hard", 0.6, 1.0)]],
        "hat_closed": [[("drum_cymbal_closed", 0.0, 1.0)]],
        "hat_pedal": [[("drum_cymbal_pedal", 0.0, 1.0)]],
        "hat_open": [[("drum_cymbal_open", 0.0, 1.0)]],
        "crash": [[("drum_cymbal_soft", 0.0, 0.6), ("drum_cymbal_hard", 0.6, 1.0)],
                  [("drum_splash_soft", 0.0, 0.6), ("drum_splash_hard", 0.6, 1.0)]],
        "tom_high": [[("drum_tom_hi_soft", 0.0, 0.6), ("drum_tom_hi_hard", 0.6, 1.0)]],
        "tom_mid": [[("drum_tom_mid_soft", 0.0, 0.6), ("drum_tom_mid_hard", 0.6, 1.0)]],
        "tom_low": [[("drum_tom_lo_soft", 0.0, 0.6), ("drum_tom_lo_hard", 0.6, 1.0)]],
        "cowbell": [[("drum_cowbell", 0.0, 1.0)]],
    }),
    "electronic": ("electronic kit", "electronic", {
        "kick": [[(name, 0.0, 1.0)] for name in (
            "bd_haus", "bd_klub", "bd_tek", "bd_zum", "bd_fat", "bd_pure", "bd_ada", "bd_gas",
            "bd_sone", "bd_zome", "elec_soft_kick", "elec_hollow_kick")],
        "snare": [[(name, 0.0, 1.0)] for name in (
            "sn_dolf", "sn_dub", "sn_zome", "elec_snare", "elec_hi_snare", "elec_mid_snare",
            "elec_lo_snare", "elec_filt_snare")],
        "clap": [[("perc_snap", 0.0, 1.0)]],
        "rim": [[("elec_wood", 0.0, 1.0)]],
        "hat_closed": [[("drum_cymbal_closed", 0.0, 1.0)], [("elec_tick", 0.0, 1.0)]],
        "hat_pedal": [[("drum_cymbal_pedal", 0.0, 1.0)]],
        "hat_open": [[("drum_cymbal_open", 0.0, 1.0)]],
        "crash": [[("elec_cymbal", 0.0, 1.0)]],
        "tom_high": [[("elec_fuzz_tom", 0.0, 1.0)]],
        "cowbell": [[("elec_bell", 0.0, 1.0)]],
    }),
    "808": ("808 kit", "808", {
        "kick": [[("bd_808", 0.0, 1.0)], [("bd_boom", 0.0, 1.0)]],
        "snare": [[("elec_snare", 0.0, 1.0)], [("sn_dolf", 0.0, 1.0)]],
        "clap": [[("perc_snap", 0.0, 1.0)]],
        "rim": [[("elec_wood", 0.0, 1.0)]],
        "hat_closed": [[("drum_cymbal_closed", 0.0, 1.0)]],
        "hat_open": [[("drum_cymbal_open", 0.0, 1.0)]],
        "cowbell": [[("drum_cowbell", 0.0, 1.0)]],
    }),
}


def sonic_pi_kits(sample_dir: Path = SONIC_PI_SAMPLE_DIR,
                  allowed_files: set[str] | None = None) -> list[DrumKit]:
    """Kits assembled from Sonic Pi one-shots present in `sample_dir`.

    Args:
        sample_dir: folder holding `<stem>.flac` files.
        allowed_files: base names cleared for use (e.g. the CC0 files of the Debian copyright);
            None allows every file present.
    """
    kits = []
    for kit_name, (description, style, roles) in _SONIC_PI_KITS.items():
        voices: dict[str, tuple[DrumVoice, ...]] = {}
        for role, candidates in roles.items():
            role_voices = []
            for candidate in candidates:
                layers = tuple(
                    SampleLayer(str(sample_dir / f"{stem}.flac"), low, high)
                    for stem, low, high in candidate
                    if (sample_dir / f"{stem}.flac").is_file()
                    and (allowed_files is None or f"{stem}.flac" in allowed_files)
                )
                if len(layers) == len(candidate):
                    role_voices.append(DrumVoice(candidate[0][0], role, layers))
            if role_voices:
                voices[role] = tuple(role_voices)
        kit = DrumKit(f"sonic-pi:{kit_name}", description, style, voices, SONIC_PI_SAMPLES)
        if kit.is_playable():
            kits.append(kit)
    return kits
