"""The notification loop (通报 -> 整改 -> 反馈, issue 17): a department's open problems from every source listed in
a numbered 通报 with a deadline each, the department's answers, re-verification and escalation (docs/notices.md)."""
