"""MTFR (Wang et al., ICMR 2017): face recognition with attribute supervision."""
