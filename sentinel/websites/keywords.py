"""Words that mark a link to a gambling or pornography site (暗链 / 链接色情、赌博内容).

The lists are what the implanted links found on government sites typically say (link texts and host names
of 博彩 and 色情 sites); a site adds its own in its declaration (`extra_keywords`). A word matches a link's
text or its URL, case-insensitively. Short, generic words are left out on purpose: a word here must not
be one a government page uses for anything else: 赌博 and 色情 themselves are not here, since a site's own news
of a crackdown (打击赌博, 扫黄打非) says them. Only links that leave the site are matched (sentinel/websites/judge.py).
"""
from __future__ import annotations

GAMBLING = (
    "博彩网", "在线赌场", "娱乐城", "百家乐", "六合彩", "时时彩", "北京赛车", "pk10", "老虎机", "真人荷官",
    "体育投注", "彩票平台", "棋牌游戏", "开户送", "注册送", "澳门威尼斯人", "澳门新葡京", "葡京", "金沙娱乐",
    "太阳城", "皇冠体育", "bet365", "188bet", "dafabet", "casino", "baccarat",
)
PORNOGRAPHY = (
    "色情网", "成人视频", "成人电影", "av女优", "无码", "一夜情", "裸聊", "约炮", "黄色网站", "porn", "xxx",
    "sex8", "91porn",
)

SHIPPED: tuple[str, ...] = GAMBLING + PORNOGRAPHY


def word_list(extra: list[str]) -> tuple[str, ...]:
    """The shipped words and a site's own, lowercased, each once."""
    seen: dict[str, None] = {}
    for word in (*SHIPPED, *extra):
        w = word.strip().lower()
        if w:
            seen.setdefault(w, None)
    return tuple(seen)


def matches(text: str, words: tuple[str, ...]) -> list[str]:
    low = text.lower()
    return [w for w in words if w in low]
