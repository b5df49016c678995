"""Supervision rules for every domain and the closed loop of their warnings.

``rules`` holds the shared vocabulary (:class:`Rule`, :class:`Finding`, the
registry of rules and of domain evaluators); each domain module declares its
rules and an evaluator that reads its feeds and returns findings; ``loop``
turns findings into warnings and moves them raised -> dispatched -> rectified
-> closed (or sent back), with escalation of overdue steps.
"""
