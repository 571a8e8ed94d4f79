"""The website rules: what each one judges, the rule of the national inspection it applies, and what to do.

Sources, cited by each rule's `source`:
- 2019: 《政府网站与政务新媒体检查指标》(国务院办公厅, 国办函〔2019〕80号), 单项否决指标 and 扣分指标;
- 2015: 《全国政府网站普查评分表》(第一次全国政府网站普查, 国办发〔2015〕15号);
- GB/T 22239-2019: the 等保 requirement item (catalogue key) a rule evidences;
- practice: no national scoring rule; what a site's security review commonly asks, said as such.
Thresholds are each declaration's `thresholds` (sites.Thresholds), defaulting to the rules' own numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Kind = Literal["veto", "deduct", "security", "practice"]
Severity = Literal["critical", "high", "medium", "low"]


@dataclass(frozen=True)
class Rule:
    id: str
    kind: Kind  # veto: 单项否决 (the site fails the inspection); deduct: 扣分; security / practice: see source
    severity: Severity
    title_zh: str
    title_en: str
    source: str
    rationale_zh: str
    rationale_en: str
    remediation_zh: str
    remediation_en: str
    catalogue: Optional[str] = None  # GB/T 22239-2019 item key (baselines/catalogue), where one applies

    def title(self) -> dict[str, str]:
        return {"zh": self.title_zh, "en": self.title_en}

    def remediation(self) -> dict[str, str]:
        return {"zh": self.remediation_zh, "en": self.remediation_en}

    def rationale(self) -> dict[str, str]:
        return {"zh": self.rationale_zh, "en": self.rationale_en}


_V2019 = "政府网站与政务新媒体检查指标（国办函〔2019〕80号）"
_P2015 = "全国政府网站普查评分表（国办发〔2015〕15号）"

RULES: tuple[Rule, ...] = (
    Rule("site.unreachable", "veto", "critical", "站点无法访问", "site unreachable",
         f"{_V2019} 单项否决·站点无法访问：监测1周，每天间隔性访问20次以上，"
         f"超过（含）15秒网站仍打不开的次数累计超过（含）总监测次数的5%；{_P2015} 单项否决·站点无法访问",
         "公众在15秒内打不开网站即视为无法访问；一周内此类访问占比达5%即单项否决。",
         "A visit that does not open within 15 s counts as unreachable; 5 % of a week's visits vetoes the site.",
         "排查服务器、网络与DNS可用性，配置监控与冗余（负载均衡、CDN、备用线路），缩短故障恢复时间。",
         "Find why the site does not answer (server, network, DNS); add monitoring and redundancy (load balancing, "
         "standby links) and shorten recovery."),
    Rule("home.stale", "veto", "critical", "首页信息长期未更新", "home page not updated",
         f"{_V2019} 单项否决·网站不更新：首页栏目信息更新——监测时间点前2周内无更新",
         "首页是政府网站的门面，两周无新信息即单项否决。",
         "The home page is the site's face: no new information for two weeks vetoes the site.",
         "建立首页信息更新机制，确保动态要闻等首页栏目至少每两周更新。",
         "Set up an editorial routine so that the home page's news columns get new items at least every two weeks."),
    Rule("column.stale", "deduct", "high", "栏目未按期更新", "column not updated in time",
         f"{_V2019} 单项否决·栏目不更新：监测时间点前2周内动态、要闻类栏目未更新，或前6个月内通知公告、政策文件类"
         f"栏目未更新（累计超过（含）5个即否决，见 columns.stale）",
         "动态要闻类栏目须两周内更新，通知公告、政策文件类须六个月内更新。",
         "News columns must get new items within two weeks, notices and policy columns within six months.",
         "按栏目类别更新信息；确无内容的栏目应整合或关停，并在页面说明。",
         "Publish in each column at its kind's pace; merge or close columns that have nothing to publish."),
    Rule("columns.stale", "veto", "critical", "未按期更新栏目累计超标", "too many columns not updated",
         f"{_V2019} 单项否决·栏目不更新：以上情况累计超过（含）5个",
         "未按期更新的栏目累计达5个即单项否决。", "Five or more columns not updated in time veto the site.",
         "逐一整改未更新栏目（见各 column.stale 问题），清理无人维护的栏目。",
         "Rectify each column not updated (the column.stale findings); remove columns nobody maintains."),
    Rule("columns.long_stale", "veto", "critical", "长期未更新栏目超过10个", "more than ten columns long not updated",
         f"{_P2015} 单项否决·网站不更新：网站中应更新但长期未更新的栏目数超过10个",
         "大量栏目长期不更新说明网站缺乏维护。", "Many columns long without new information show an unmaintained site.",
         "清理长期未更新栏目，建立栏目责任人和更新台账。",
         "Clean up columns long without updates; give every column an owner and an update log."),
    Rule("column.blank", "deduct", "high", "空白栏目", "blank column",
         f"{_V2019} 单项否决·栏目不更新：空白栏目（栏目有名无实、无内容；超过（含）5个即否决，见 columns.blank）；"
         f"{_P2015} 空白栏目",
         "栏目有名无实会误导公众。", "A column that holds nothing misleads the public.",
         "为空白栏目补充内容，或撤销该栏目并删除其入口链接。",
         "Fill the column, or remove it and every link to it."),
    Rule("columns.blank", "veto", "critical", "空白栏目超过5个", "five or more blank columns",
         f"{_V2019} 单项否决·栏目不更新：空白栏目数量超过（含）5个；{_P2015} 单项否决：空白栏目数量超过5个",
         "空白栏目达5个即单项否决。", "Five or more blank columns veto the site.",
         "逐一整改空白栏目（见各 column.blank 问题）。", "Rectify each blank column (the column.blank findings)."),
    Rule("links.broken_home", "deduct", "high", "首页链接不可用", "broken link on the home page",
         f"{_V2019} 扣分指标·可用性·首页可用性：首页上的链接（包括图片、附件、外部链接等）不可用；"
         f"{_P2015} 首页链接不可用",
         "首页链接打不开直接影响公众使用。", "A home page link that does not open fails every visitor.",
         "修复或删除失效链接，发布前进行链接检查。", "Fix or remove the link; check links before publishing."),
    Rule("links.broken", "deduct", "medium", "其他页面链接不可用", "broken link below the home page",
         f"{_V2019} 扣分指标·可用性·链接可用性：其他页面的链接不可用；{_P2015} 其他页面不可用链接",
         "失效链接降低网站可用性。", "Broken links lower the site's usability.",
         "修复或删除失效链接，定期进行全站链接检查。",
         "Fix or remove the link; check the whole site's links regularly."),
    Rule("security.malicious_code", "veto", "critical", "网页挂马", "malicious code on a page (挂马)",
         f"{_V2019} 单项否决·严重问题（安全、泄密事故等）；{_P2015} 单项否决·严重问题",
         "挂马页面使访问者感染恶意代码，属严重安全事件。",
         "A page carrying malicious code infects its visitors: a serious security incident.",
         "立即下线受影响页面，清除恶意代码，排查入侵途径（CMS漏洞、弱口令、上传点），修复后复查并上报。",
         "Take the pages down, remove the code, find how it got there (CMS flaws, weak passwords, uploads), "
         "fix that, check again and report the incident.",
         catalogue="ces.malware.protection"),
    Rule("security.tampered", "veto", "critical", "网页内容被篡改", "page content tampered with (篡改)",
         f"{_V2019} 单项否决·严重问题（安全、泄密事故等）；{_P2015} 单项否决·严重问题",
         "与经审核的基线相比页面内容被改动，可能遭篡改。",
         "The page differs from its reviewed baseline: it may have been tampered with.",
         "核对差异；属篡改的立即恢复页面、排查入侵途径并上报；属正常改版的由负责人重新审核基线。",
         "Review the difference: if tampered, restore the page, find the way in and report; if a planned change, "
         "have its owner review a new baseline.",
         catalogue="ces.integrity.storage"),
    Rule("security.hidden_links", "veto", "critical", "暗链", "hidden links (暗链)",
         f"{_V2019} 单项否决·严重问题：发布或链接反动、暴力、色情等内容；暗链是被入侵后植入的隐藏外链",
         "对访问者不可见、指向外部站点的链接通常是入侵者植入的暗链。",
         "Links a visitor cannot see that lead off the site are, as a rule, planted by an intruder.",
         "删除暗链，排查网页被植入的途径（模板、数据库、CMS插件），修复后复查。",
         "Remove the links; find how they were planted (templates, database, CMS plug-ins), fix that, check again."),
    Rule("security.bad_links", "veto", "critical", "链接赌博、色情内容", "links to gambling or pornography",
         f"{_V2019} 单项否决·严重问题：发布或链接反动、暴力、色情等内容",
         "政府网站不得链接赌博、色情内容。", "A government site must not link gambling or pornography.",
         "立即删除相关链接并排查是否遭入侵植入。", "Remove the links at once and check whether they were planted."),
    Rule("security.foreign_content", "security", "high", "加载未声明的外部脚本或框架",
         "unexpected external scripts or frames",
         "practice（无全国评分条款）：外部脚本与框架在访问者浏览器中以本站身份运行；未声明的来源可能是植入或供应链风险",
         "外部脚本以本站权限运行，来源应经审查并在声明中列出。",
         "External scripts run with the site's rights in the visitor's browser: their sources must be reviewed "
         "and declared.",
         "删除未经审查的外部脚本和框架，或将其来源加入网站声明的 allowed_hosts；优先本地托管。",
         "Remove unreviewed scripts and frames, or declare their hosts in allowed_hosts; prefer hosting them locally."),
    Rule("tls.certificate", "security", "high", "HTTPS证书无效或即将过期", "TLS certificate invalid or expiring",
         "GB/T 22239-2019 安全通信网络·通信传输（保密性、完整性）；practice：证书到期前30天更换",
         "证书失效会使访问者无法安全访问并习惯于忽略告警。",
         "An invalid certificate breaks secure access and teaches visitors to click through warnings.",
         "更换由受信任CA签发、域名匹配的证书，设置到期前自动续期与提醒。",
         "Install a certificate from a trusted CA for the site's names; renew automatically and alert before expiry.",
         catalogue="cns.transmission.confidentiality"),
    Rule("tls.protocols", "security", "high", "启用过时的TLS协议", "outdated TLS protocol versions",
         "GB/T 22239-2019 安全通信网络·通信传输（保密性）；GB/T 38636-2020 与业界实践：禁用 SSLv3、TLS 1.0/1.1",
         "旧版协议存在已知攻击。", "The old protocol versions have known attacks.",
         "仅启用 TLS 1.2 与 TLS 1.3（如 nginx：ssl_protocols TLSv1.2 TLSv1.3;）。",
         "Allow TLS 1.2 and 1.3 only (nginx: ssl_protocols TLSv1.2 TLSv1.3;).",
         catalogue="cns.transmission.confidentiality"),
    Rule("http.security_headers", "practice", "medium", "缺少安全响应头", "security headers missing",
         "practice（无全国评分条款）：X-Content-Type-Options、X-Frame-Options 或 CSP frame-ancestors、"
         "HTTPS 站点的 HSTS",
         "安全响应头可减轻点击劫持、内容嗅探与降级攻击。",
         "Security headers blunt clickjacking, content sniffing and downgrade attacks.",
         "在 Web 服务器配置中添加缺失的响应头（如 nginx add_header ... always;）。",
         "Add the missing headers in the web server's configuration (nginx: add_header ... always;)."),
    Rule("http.response_time", "practice", "medium", "首页响应缓慢", "slow home page",
         "practice：首页应在数秒内打开（15秒以上计为无法访问，见 site.unreachable）",
         "响应缓慢影响公众使用，也常是故障前兆。", "A slow page fails visitors and often comes before an outage.",
         "排查服务器负载、数据库与网络瓶颈，启用缓存与压缩。",
         "Find the bottleneck (server load, database, network); enable caching and compression."),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
