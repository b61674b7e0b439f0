from __future__ import annotations

from PIL import Image

from hamkit import Deduplicator
from hamkit.dedup.review import contact_sheet, review_html, review_pairs


def test_contact_sheet_and_html(synthetic, tmp_path):
    result = Deduplicator("phash", threshold=6, num_workers=0, progress=False).find(synthetic.root)
    assert len(result.pairs) > 0
    best = review_pairs(result, 5)
    assert [s for *_, s in best] == sorted(s for *_, s in best)  # Hamming: smallest distance first
    sheet = Image.open(contact_sheet(result, tmp_path / "review.png", max_pairs=6, thumb=64))
    assert sheet.size == (2 * (2 * 64 + 24), 3 * (64 + 34 + 8))
    page = review_html(result, tmp_path / "review.html", max_pairs=4).read_text()
    pairs_part = page.split("<h2>Groups of three or more</h2>")[0]  # groups follow, whole
    assert pairs_part.count("data:image/jpeg;base64,") == 8 and "Hamming" in page
    empty = Deduplicator("exact", num_workers=0, progress=False).find(sorted(synthetic.root.rglob("ISIC_*.jpg"))[:2])
    assert "no duplicate pairs" in review_html(empty, tmp_path / "empty.html").read_text()
