require ["reject","fileinto"]; fileinto "b"; reject "no";
